package report

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Regenerate the golden files after an intended change of output with
//
//	go test ./harness/report -run TestGolden -update
//
// and review the diff of testdata/ before committing it.
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current writers")

func TestGolden(t *testing.T) {
	cases := []struct {
		name   string
		file   string
		write  func(io.Writer, *Report) error
		reason string
	}{
		{"json", "report.json.golden", WriteJSON, "the machine format `ddhil report` reads back"},
		{"junit", "junit.xml.golden", WriteJUnit, "what CI test reporters show"},
		{"markdown", "report.md.golden", WriteMarkdown, "the job summary"},
		{"html", "report.html.golden", WriteHTML, "the page people read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			require.NoError(t, tc.write(&got, sampleReport()), tc.reason)

			// Deterministic: a second rendering is byte-identical.
			var again bytes.Buffer
			require.NoError(t, tc.write(&again, sampleReport()))
			require.Equal(t, got.String(), again.String(), "two renderings differ")

			path := filepath.Join("testdata", tc.file)
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, got.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "missing golden file: run go test -run TestGolden -update")
			if d := lineDiff(string(want), got.String()); d != "" {
				t.Errorf("output differs from %s (%s); -want +got:\n%s\nregenerate with -update if the change is intended", path, tc.reason, d)
			}
		})
	}
}

// lineDiff shows the region where want and got differ, with line numbers
// ("" when they are equal): lines only in want start with -, lines only in
// got with +, at most 60 of each.
func lineDiff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	pre := 0
	for pre < len(w) && pre < len(g) && w[pre] == g[pre] {
		pre++
	}
	suf := 0
	for suf < len(w)-pre && suf < len(g)-pre && w[len(w)-1-suf] == g[len(g)-1-suf] {
		suf++
	}
	var b strings.Builder
	show := func(sign string, lines []string, from int) {
		for i, l := range lines {
			if i == 60 {
				fmt.Fprintf(&b, "%s ... %d more lines\n", sign, len(lines)-i)
				return
			}
			fmt.Fprintf(&b, "%s%5d: %s\n", sign, from+i+1, l)
		}
	}
	show("-", w[pre:len(w)-suf], pre)
	show("+", g[pre:len(g)-suf], pre)
	return b.String()
}
