package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestOffset(t *testing.T) {
	cases := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"zero", 0, "00:00.000"},
		{"millis", 1234 * time.Millisecond, "00:01.234"},
		{"minutes", 83905 * time.Millisecond, "01:23.905"},
		{"hours", 3*time.Hour + 2*time.Minute + 1*time.Second + 5*time.Millisecond, "3:02:01.005"},
		{"negative", -1500 * time.Millisecond, "-00:01.500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, Offset(tc.in)) })
	}
}

func TestHuman(t *testing.T) {
	cases := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"sub-second", 850 * time.Millisecond, "850ms"},
		{"whole seconds", 10 * time.Second, "10s"},
		{"tenths", 12400 * time.Millisecond, "12.4s"},
		{"minutes", 120250 * time.Millisecond, "2m00s"},
		{"hours", 62 * time.Minute, "1h02m"},
		{"negative", -2 * time.Second, "-2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, Human(tc.in)) })
	}
}

func TestExcerpt(t *testing.T) {
	cases := []struct {
		name  string
		in    []byte
		limit int
		want  string
	}{
		{"json text", []byte(`{"a":1}`), 100, `{"a":1}`},
		{"cut text", []byte(`{"abc":1}`), 4, "{\"ab\n… (cut at 4 bytes)"},
		{"cut inside a rune", []byte("ab≥"), 4, "ab\n… (cut at 4 bytes)"},
		{"cbor as hex", []byte{0xa2, 0x63, 'h', 'e', 'd', 0x01}, 100, "0000  a2 63 68 65 64 01                                 |.ched.|"},
		{"two hex lines", []byte("\x00123456789abcdef\x01"), 100,
			"0000  00 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |.123456789abcdef|\n0010  01                                                |.|"},
		{"empty", nil, 10, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, Excerpt(tc.in, tc.limit)) })
	}
}

func TestFindingText(t *testing.T) {
	cases := []struct {
		name string
		in   Finding
		want string
	}{
		{"message only", Finding{Message: "m"}, "m"},
		{"everything", Finding{Message: "m", ReportID: u64(7), At: dur(ms(1500)), Expected: "1", Observed: "2", Path: "/a"},
			"[report 7 @ 00:01.500] m (expected 1, observed 2, at /a)"},
		{"time only", Finding{Message: "m", At: dur(0)}, "[@ 00:00.000] m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tc.in.Text()) })
	}
}

func TestAxis(t *testing.T) {
	cases := []struct {
		name  string
		span  time.Duration
		step  time.Duration
		label string // of the second tick
	}{
		{"sub-second run", 900 * time.Millisecond, 100 * time.Millisecond, "100ms"},
		{"two minutes", 120 * time.Second, 10 * time.Second, "10s"},
		{"an hour soak", time.Hour, 5 * time.Minute, "5m"},
		{"a day", 24 * time.Hour, 2 * time.Hour, "2h"},
		{"a month", 30 * 24 * time.Hour, 60 * time.Hour, "60h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step := axisStep(tc.span)
			assert.Equal(t, tc.step, step)
			assert.LessOrEqual(t, int(tc.span/step), 12)
			assert.Equal(t, tc.label, axisLabel(step))
		})
	}
	assert.Equal(t, "1m30s", axisLabel(90*time.Second))
	assert.Equal(t, "2.5s", axisLabel(2500*time.Millisecond))
}

func TestLabelRowsNeverOverlap(t *testing.T) {
	rows := newLabelRows(100, 500)
	type placed struct {
		row        int
		start, end float64
	}
	var all []placed
	for i, x := range []float64{100, 101, 102, 103, 150, 151, 400, 490, 499, 500} {
		text := strings.Repeat("x", 5+i)
		row, at := rows.place(x, text)
		w := textWidth(text)
		assert.GreaterOrEqual(t, at, 100.0, "inside the plot on the left")
		assert.LessOrEqual(t, at+w, 500.0, "inside the plot on the right")
		all = append(all, placed{row, at, at + w})
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.row == b.row {
				assert.False(t, a.start < b.end && b.start < a.end, "labels overlap: %+v %+v", a, b)
			}
		}
	}
	assert.Greater(t, len(rows.end), 2, "crowded labels open more rows instead of overlapping")
}
