package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parsedJUnit is an independent reading of the JUnit layout (not the
// writer's own types), as a CI reporter would parse it.
type parsedJUnit struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Errors     int    `xml:"errors,attr"`
		Skipped    int    `xml:"skipped,attr"`
		Timestamp  string `xml:"timestamp,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Classname string `xml:"classname,attr"`
			Name      string `xml:"name,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, r *Report) parsedJUnit {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteJUnit(&buf, r))
	var p parsedJUnit
	require.NoError(t, xml.Unmarshal(buf.Bytes(), &p), buf.String())
	require.Len(t, p.Suites, 1)
	return p
}

func TestJUnitParsesBack(t *testing.T) {
	lab := sampleWithVerdict(Pass)
	lab.Run.LabError, lab.Run.Incomplete, lab.Run.IncompleteReason = "qemu: serial port closed", true, "lab error"
	interrupted := sampleWithVerdict(Fail)
	interrupted.Run.Incomplete, interrupted.Run.IncompleteReason = true, "interrupted (SIGINT) after 2 of 5 periods"

	cases := []struct {
		name                             string
		report                           *Report
		tests, failures, errors, skipped int
		verdict                          string
	}{
		{"sample with an errored check", sampleReport(), 22, 3, 1, 3, "error"},
		{"failing run", sampleWithVerdict(Fail), 22, 3, 0, 3, "fail"},
		{"passing run", sampleWithVerdict(Pass), 22, 0, 0, 3, "pass"},
		{"lab error adds a run case", lab, 23, 0, 1, 3, "error"},
		{"interrupted run adds a run case", interrupted, 23, 3, 1, 3, "fail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := parseJUnit(t, tc.report)
			s := p.Suites[0]
			assert.Equal(t, "ddhil", s.Name)
			assert.Equal(t, []int{tc.tests, tc.failures, tc.errors, tc.skipped}, []int{p.Tests, p.Failures, p.Errors, p.Skipped}, "testsuites counts")
			assert.Equal(t, []int{tc.tests, tc.failures, tc.errors, tc.skipped}, []int{s.Tests, s.Failures, s.Errors, s.Skipped}, "testsuite counts")

			// The counts agree with the elements actually present.
			var fails, errs, skips int
			for _, c := range s.Cases {
				assert.True(t, strings.HasPrefix(c.Classname, "ddhil."), c.Classname)
				if c.Failure != nil {
					fails++
					assert.Equal(t, "fail", c.Failure.Type)
					assert.NotEmpty(t, c.Failure.Message)
				}
				if c.Error != nil {
					errs++
				}
				if c.Skipped != nil {
					skips++
					assert.NotEmpty(t, c.Skipped.Message)
				}
			}
			assert.Equal(t, []int{len(s.Cases), tc.failures, tc.errors, tc.skipped}, []int{tc.tests, fails, errs, skips})

			props := map[string]string{}
			for _, pr := range s.Properties {
				props[pr.Name] = pr.Value
			}
			assert.Equal(t, tc.verdict, props["ddhil.verdict"])
			assert.Equal(t, "qemu", props["target.kind"])
			assert.Equal(t, "9f2c4e1b7a5d3c8e0f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a", props["firmware.sha256"])
			assert.Equal(t, "2026-03-14T09:26:53", s.Timestamp)
		})
	}
}

func TestJUnitCaseContent(t *testing.T) {
	p := parseJUnit(t, sampleReport())
	byName := map[string]int{}
	for i, c := range p.Suites[0].Cases {
		byName[strings.Fields(c.Name)[0]] = i
	}
	cases := p.Suites[0].Cases

	a01 := cases[byName["DD-A01"]]
	assert.Equal(t, "ddhil.accuracy", a01.Classname)
	assert.Equal(t, "DD-A01 network_stats are deltas since the previous report", a01.Name)
	require.NotNil(t, a01.Failure)
	assert.Contains(t, a01.Failure.Message, "(and 9 more)")
	assert.Equal(t, 10, strings.Count(a01.Failure.Body, "\n- "), "one line per finding")

	s07 := cases[byName["DD-S07"]]
	assert.Nil(t, s07.Failure, "a warning is not a failure")
	assert.Contains(t, s07.SystemOut, "warning: DD-S07")

	a02 := cases[byName["DD-A02"]]
	require.NotNil(t, a02.Error)
	assert.Contains(t, a02.Error.Message, "no meter event for connection c2")

	x01 := cases[byName["DD-X01"]]
	require.NotNil(t, x01.Skipped)
	assert.Contains(t, x01.Skipped.Message, "no TLS")
}

func TestJUnitSurvivesHostileText(t *testing.T) {
	r := sampleWithVerdict(Fail)
	r.Checks[4].Findings[0].Message = "bad \x00\x1b]]> <x> & \"q\" \xff end"
	r.Checks[4].Title = "title ]]> <y>"
	p := parseJUnit(t, r)
	c := p.Suites[0].Cases[4]
	require.NotNil(t, c.Failure)
	assert.Contains(t, c.Name, "title ]]> <y>")
	assert.Contains(t, c.Failure.Body, "]]> <x> & \"q\"")
	assert.Contains(t, c.Failure.Message, "<x> & \"q\"")
}
