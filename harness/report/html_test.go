package report

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

func parseHTML(t *testing.T, r *Report) *html.Node {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteHTML(&buf, r))
	doc, err := html.Parse(&buf)
	require.NoError(t, err)
	return doc
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if match(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findAll(c, match)...)
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return slices.Contains(strings.Fields(attr(n, "class")), class)
}

func element(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == name }
}

func text(n *html.Node) string {
	var b strings.Builder
	for _, t := range findAll(n, func(n *html.Node) bool { return n.Type == html.TextNode }) {
		b.WriteString(t.Data)
	}
	return b.String()
}

func TestHTMLStructure(t *testing.T) {
	cases := []struct {
		name    string
		report  *Report
		verdict string
	}{
		{"error", sampleReport(), "ERROR"},
		{"fail", sampleWithVerdict(Fail), "FAIL"},
		{"pass", sampleWithVerdict(Pass), "PASS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := parseHTML(t, tc.report)

			headers := findAll(doc, func(n *html.Node) bool { return element("header")(n) && attr(n, "id") == "verdict" })
			require.Len(t, headers, 1)
			assert.True(t, hasClass(headers[0], "v-"+strings.ToLower(tc.verdict)), "verdict colour class")
			assert.Contains(t, text(headers[0]), tc.verdict)
			assert.Contains(t, text(headers[0]), tc.report.VerdictReason())

			svgs := findAll(doc, element("svg"))
			require.Len(t, svgs, 1, "one timeline")
			circles := findAll(svgs[0], element("circle"))
			var accepted, rejected, linked int
			for _, c := range circles {
				if !hasClass(c, "report") {
					continue
				}
				switch {
				case hasClass(c, "accepted"):
					accepted++
				case hasClass(c, "rejected"):
					rejected++
				}
				if c.Parent.Data == "a" && strings.HasPrefix(attr(c.Parent, "href"), "#report-") {
					linked++
				}
			}
			assert.Equal(t, 11, accepted, "accepted report markers")
			assert.Equal(t, 1, rejected, "rejected report markers")
			assert.Equal(t, 12, linked, "every marker links to its report")

			// Every marker's link has a target.
			ids := map[string]bool{}
			for _, n := range findAll(doc, func(n *html.Node) bool { return attr(n, "id") != "" }) {
				ids[attr(n, "id")] = true
			}
			for _, a := range findAll(doc, element("a")) {
				if h := attr(a, "href"); strings.HasPrefix(h, "#") {
					assert.True(t, ids[h[1:]], "dangling link %s", h)
				}
			}

			assert.Len(t, findAll(doc, func(n *html.Node) bool { return element("details")(n) && hasClass(n, "report") }), 12)
			assert.Len(t, findAll(doc, func(n *html.Node) bool { return element("section")(n) && hasClass(n, "check") }), 22)
			assert.Empty(t, findAll(doc, element("script")), "no script needed")
			for _, n := range findAll(doc, func(n *html.Node) bool { return attr(n, "src") != "" }) {
				t.Errorf("external resource %s in <%s>", attr(n, "src"), n.Data)
			}
		})
	}
}

func TestHTMLTimelineShapes(t *testing.T) {
	doc := parseHTML(t, sampleReport())
	svg := findAll(doc, element("svg"))[0]
	count := func(name, class string) int {
		return len(findAll(svg, func(n *html.Node) bool { return element(name)(n) && hasClass(n, class) }))
	}
	assert.Equal(t, 2, count("rect", "conn"), "one bar per connection")
	assert.Equal(t, 2, count("line", "connect"))
	assert.Equal(t, 2, count("path", "disconnect"))
	assert.Equal(t, 1, count("line", "reset"))
	assert.Equal(t, 1, count("line", "fault"))
	assert.Equal(t, 4, count("circle", "sub"))
	assert.Equal(t, 12, count("path", "resp"))
	assert.Equal(t, 1, count("path", "rejected"), "the rejected response")
	assert.Equal(t, 2, count("rect", "due"), "a first-report window per connection")
	// Ticks from each connection's first report every 10 s: 3.0 … 53.0 (6)
	// before the reconnect, 63.9 … 113.9 (6) after it.
	assert.Equal(t, 12, count("line", "tick"))
	assert.Equal(t, 10, count("rect", "tol"), "tolerance bands on all but the anchors")
	assert.Equal(t, 6, count("rect", "phase"), "boot, await connect, steady state, fault, reconnect, teardown")

	var lanes []string
	for _, n := range findAll(svg, func(n *html.Node) bool { return element("text")(n) && hasClass(n, "lanename") }) {
		lanes = append(lanes, text(n))
	}
	assert.Equal(t, []string{"phases", "harness", "connection", "expected", "reports", "responses", "time (wall)"}, lanes)
	var axis []string
	for _, n := range findAll(svg, func(n *html.Node) bool { return element("text")(n) && hasClass(n, "axis") }) {
		axis = append(axis, text(n))
	}
	assert.Equal(t, []string{"0", "10s", "20s", "30s", "40s", "50s", "1m", "1m10s", "1m20s", "1m30s", "1m40s", "1m50s", "2m"}, axis)
}

func TestHTMLEscapesEverything(t *testing.T) {
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	r := sampleWithVerdict(Fail)
	r.Checks[4].Findings[0].Message = evil
	r.Checks[4].Findings[0].Excerpt = evil
	r.Checks[4].Title = evil
	r.Checks[4].CitationURL = "javascript:alert(3)"
	r.Target.Name = evil
	r.Run.Host = evil
	r.Timeline[0].Label = evil
	r.Reports[0].KeepPayload([]byte(evil))
	r.Artefacts = append(r.Artefacts, Artefact{Name: "javascript:alert(4)", Kind: "other"})

	var buf bytes.Buffer
	require.NoError(t, WriteHTML(&buf, r))
	out := buf.String()
	assert.NotContains(t, out, "<script>")
	assert.NotContains(t, out, "<img")
	assert.NotContains(t, out, `href="javascript:`)

	doc, err := html.Parse(strings.NewReader(out))
	require.NoError(t, err)
	assert.Empty(t, findAll(doc, element("script")))
	assert.Empty(t, findAll(doc, element("img")))
	assert.Contains(t, text(doc), evil, "the text is shown, not interpreted")
}

func TestHTMLEmptyReport(t *testing.T) {
	r := New()
	r.Run.LabError = "qemu-system-arm not found in PATH"
	doc := parseHTML(t, r)
	assert.Contains(t, text(doc), "Lab error: qemu-system-arm not found in PATH")
	assert.Contains(t, text(doc), "No Defender report was received.")
	svg := findAll(doc, element("svg"))
	require.Len(t, svg, 1, "an empty run still draws its (empty) timeline")
	assert.Empty(t, findAll(svg[0], element("circle")))
}
