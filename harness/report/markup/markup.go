// Package markup holds what ddhil's report writers share about their
// output formats: the JUnit XML schema that CI test reporters read, and the
// escaping that keeps report text inert in XML and Markdown.
package markup

import (
	"encoding/xml"
	"strings"
)

// JUnitSuites is the root of a JUnit XML file.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one <testsuite>.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []JUnitProperty `xml:"properties>property"`
	Cases      []JUnitCase     `xml:"testcase"`
}

// JUnitProperty is one <property>.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one <testcase>.
type JUnitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitProblem `xml:"failure"`
	Error     *JUnitProblem `xml:"error"`
	Skipped   *JUnitSkipped `xml:"skipped"`
	SystemOut *JUnitCDATA   `xml:"system-out"`
}

// JUnitProblem is a <failure> or an <error>.
type JUnitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",cdata"`
}

// JUnitCDATA is text written verbatim (sanitise it with XMLSafe).
type JUnitCDATA struct {
	Text string `xml:",cdata"`
}

// JUnitSkipped is a <skipped>.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// XMLSafe replaces what XML 1.0 cannot carry (most control characters,
// invalid UTF-8) with U+FFFD; encoding/xml escapes attributes and text
// itself but writes CDATA sections verbatim.
func XMLSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// mdSpecial are the characters that could start markup inside a table cell
// or a list item; they are backslash-escaped.
var mdSpecial = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "|", `\|`, "#", `\#`, "~", `\~`, "!", `\!`,
	"&", "&amp;",
)

// MD makes s inert, one-line Markdown text.
func MD(s string) string { return mdSpecial.Replace(OneLine(s)) }

// Code renders s as inline code ("—" when empty); backticks become quotes,
// since GitHub's tables cannot escape them inside code spans.
func Code(s string) string {
	if s == "" {
		return "—"
	}
	s = strings.ReplaceAll(OneLine(s), "`", "'")
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// OneLine folds every run of white space, line breaks included, to one
// space.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
