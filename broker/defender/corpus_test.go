package defender_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// corpusCase is one entry of fixtures/reports/cases.json.
type corpusCase struct {
	File         string   `json:"file"`
	Format       string   `json:"format"`
	Lenient      bool     `json:"lenient"`
	Accepted     bool     `json:"accepted"`
	Code         string   `json:"code"`
	Category     string   `json:"category"` // Problem.Category
	Path         *string  `json:"path"`
	Reason       string   `json:"reason"` // substring of Problem.Reason
	ReportID     *uint64  `json:"report_id"`
	HeaderParsed *bool    `json:"header_parsed"`
	Lint         []string `json:"lint"`
	Why          string   `json:"why"`
}

func (c corpusCase) name() string {
	if c.Lenient {
		return c.File + "/lenient"
	}
	return c.File
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "cases.json"))
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var cases []corpusCase
	require.NoError(t, dec.Decode(&cases))
	return cases
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	require.NoError(t, err)
	return b
}

func ruleSet(fs []defender.Finding) []string {
	seen := map[string]bool{}
	rules := []string{}
	for _, f := range fs {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			rules = append(rules, f.Rule)
		}
	}
	sort.Strings(rules)
	return rules
}

// TestCorpusManifest keeps the manifest honest: every file is described,
// every described file exists, and the corpus covers both formats and
// both outcomes.
func TestCorpusManifest(t *testing.T) {
	cases := loadCorpus(t)
	require.GreaterOrEqual(t, len(cases), 40)
	described := map[string]bool{}
	count := map[string]int{}
	for _, c := range cases {
		described[c.File] = true
		assert.Contains(t, []string{"json", "cbor"}, c.Format, c.File)
		assert.Equal(t, c.Format, strings.TrimPrefix(filepath.Ext(c.File), "."), "%s: format must match the extension", c.File)
		assert.NotEmpty(t, c.Why, c.File)
		if c.Accepted {
			assert.Empty(t, c.Code, c.File)
			assert.Nil(t, c.Path, c.File)
		} else {
			assert.Equal(t, defender.CodeInvalidPayload, c.Code, c.File)
			assert.NotEmpty(t, c.Category, c.File)
			assert.NotNil(t, c.Path, "%s: a rejection names its path", c.File)
		}
		count[c.Format+"/"+map[bool]string{true: "accepted", false: "rejected"}[c.Accepted]]++
	}
	for _, k := range []string{"json/accepted", "json/rejected", "cbor/accepted", "cbor/rejected"} {
		assert.Positive(t, count[k], k)
	}
	entries, err := os.ReadDir(corpusDir)
	require.NoError(t, err)
	onDisk := map[string]bool{}
	for _, e := range entries {
		if e.Name() == "cases.json" {
			continue
		}
		onDisk[e.Name()] = true
		assert.True(t, described[e.Name()], "%s is not in cases.json", e.Name())
	}
	for f := range described {
		assert.True(t, onDisk[f], "cases.json names missing file %s", f)
	}
}

// TestCorpus runs every manifest case through Validate.
func TestCorpus(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name(), func(t *testing.T) {
			payload := readFixture(t, c.File)
			res := defender.Validate(defender.Format(c.Format), payload, defender.Options{Lenient: c.Lenient})

			if c.Accepted {
				require.Nil(t, res.Problem, "want accepted (%s)", c.Why)
				require.NotNil(t, res.Report)
			} else {
				require.NotNil(t, res.Problem, "want rejected (%s)", c.Why)
				assert.Equal(t, c.Code, res.Problem.Code)
				assert.Equal(t, c.Category, res.Problem.Category)
				assert.Equal(t, defender.MsgMalformed, res.Problem.Message)
				assert.Equal(t, *c.Path, res.Problem.Path)
				assert.Contains(t, res.Problem.Reason, c.Reason)
			}
			if c.ReportID != nil {
				assert.True(t, res.HeaderParsed, "header must be read")
				assert.Equal(t, *c.ReportID, res.ReportID)
			}
			if c.HeaderParsed != nil {
				assert.Equal(t, *c.HeaderParsed, res.HeaderParsed)
			}
			want := append([]string{}, c.Lint...)
			sort.Strings(want)
			assert.Equal(t, want, ruleSet(res.Lint), "lint rules")
			for _, f := range res.Lint {
				assert.NotEmpty(t, f.Message)
			}
		})
	}
}
