package yamlerr

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"gopkg.in/yaml.v3"
)

type doc struct {
	Name    string  `yaml:"name"`
	Console console `yaml:"console"`
	Steps   []step  `yaml:"provision"`
}

type console struct {
	Prompt     string `yaml:"prompt"`
	LineEnding string `yaml:"line_ending"`
	SyncEmpty  bool   `yaml:"sync_empty_line"`
}

type step struct {
	Send    string `yaml:"send"`
	Timeout int    `yaml:"timeout_ms"`
}

func decode(src string) error {
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	var d doc
	return Explain(dec.Decode(&d), "my.yaml", &d)
}

func TestExplain(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"misspelt top key", "name: x\nnmae: y\n", `my.yaml:2: unknown key "nmae" (did you mean "name"?)`},
		{"misspelt nested key", "console:\n  promt: \"> \"\n", `my.yaml:2: unknown key "promt" (did you mean "prompt"?)`},
		{"unrelated key", "frobnicate: 1\n", `my.yaml:1: unknown key "frobnicate" (known here: console, name, provision)`},
		{"key in a list item", "provision:\n  - send: a\n    timout_ms: 3\n", `my.yaml:3: unknown key "timout_ms" (did you mean "timeout_ms"?)`},
		{"wrong type", "console:\n  sync_empty_line: maybe\n", "my.yaml:2: want true or false, got the string `maybe`"},
		{"number wanted", "provision:\n  - timeout_ms: soon\n", "my.yaml:2: want a whole number, got the string `soon`"},
		{"syntax", "name: [\n", "my.yaml:1: did not find expected node content"},
		{"empty", "", "my.yaml: the file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := decode(tc.src)
			if assert.Error(t, err) {
				assert.Equal(t, tc.want, err.Error())
				assert.NotContains(t, err.Error(), "yamlerr.", "no Go type names")
			}
		})
	}
}
