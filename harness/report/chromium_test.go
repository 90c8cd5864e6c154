package report

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChromiumRendersReport opens report.html in a real headless Chromium:
// the screenshot must be a PNG of the window size, not blank, with the
// verdict colour filling the header; the DOM Chromium builds must hold the
// verdict and the SVG timeline. Set DDHIL_REPORT_SCREENSHOTS=dir to keep the
// PNGs for a look.
func TestChromiumRendersReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	if _, err := FindChromium(); err != nil {
		t.Skipf("%v", err)
	}
	const width, height = 1280, 2000
	cases := []struct {
		name    string
		report  *Report
		verdict string
		colour  color.RGBA // CSS --fail / --pass
		other   color.RGBA
		dumpDOM bool
	}{
		{"fail is red", sampleWithVerdict(Fail), "FAIL", color.RGBA{0xcf, 0x22, 0x2e, 0xff}, color.RGBA{0x1a, 0x7f, 0x37, 0xff}, true},
		{"pass is green", sampleWithVerdict(Pass), "PASS", color.RGBA{0x1a, 0x7f, 0x37, 0xff}, color.RGBA{0xcf, 0x22, 0x2e, 0xff}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, WriteAll(dir, tc.report))
			htmlPath := filepath.Join(dir, FileHTML)
			pngPath := filepath.Join(dir, "report.png")

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			require.NoError(t, Screenshot(ctx, htmlPath, pngPath, width, height))
			t.Logf("screenshot in %s", time.Since(start).Round(time.Millisecond))
			keepScreenshot(t, pngPath, strings.ReplaceAll(tc.name, " ", "-")+".png")

			f, err := os.Open(pngPath)
			require.NoError(t, err)
			defer f.Close()
			img, err := png.Decode(f)
			require.NoError(t, err, "not a valid PNG")
			require.Equal(t, image.Rect(0, 0, width, height), img.Bounds())

			// Not blank: many distinct colours across the page.
			colours := map[color.RGBA]bool{}
			for y := 0; y < height; y += 3 {
				for x := 0; x < width; x += 3 {
					colours[rgba(img.At(x, y))] = true
				}
			}
			assert.Greater(t, len(colours), 50, "page looks blank")

			// The header band (top 60 rows) is the verdict colour, not the other.
			band := image.Rect(0, 0, width, 60)
			got, wrong := countNear(img, band, tc.colour), countNear(img, band, tc.other)
			area := band.Dx() * band.Dy()
			assert.Greater(t, got, area*6/10, "verdict colour covers the header (%d of %d px)", got, area)
			assert.Zero(t, wrong, "the other verdict's colour in the header")

			// Below the header the other colour shows up too (badges, markers)
			// when the run has both outcomes: a fail run has passing checks.
			if tc.verdict == "FAIL" {
				assert.Positive(t, countNear(img, image.Rect(0, 100, width, height), tc.other), "passing badges rendered")
			}

			if !tc.dumpDOM {
				return
			}
			dom, err := DumpDOM(ctx, htmlPath)
			require.NoError(t, err)
			assert.Contains(t, dom, `<div class="word">`+tc.verdict+`</div>`)
			assert.Contains(t, dom, `<svg class="timeline"`)
			assert.Equal(t, 11, strings.Count(dom, `class="report accepted"`), "accepted report markers in the DOM")
			assert.Equal(t, 1, strings.Count(dom, `class="report rejected"`), "rejected report markers in the DOM")
		})
	}
}

func TestChromiumErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	if _, err := FindChromium(); err != nil {
		t.Skipf("%v", err)
	}
	t.Run("missing html", func(t *testing.T) {
		err := Screenshot(context.Background(), filepath.Join(t.TempDir(), "nope.html"), filepath.Join(t.TempDir(), "x.png"), 100, 100)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no such file")
	})
	t.Run("deadline kills the browser", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, WriteAll(dir, sampleReport()))
		// Shorter than a browser start (over a second here), so the
		// browser is running when the deadline hits.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := Screenshot(ctx, filepath.Join(dir, FileHTML), filepath.Join(dir, "x.png"), 100, 100)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, harness.ErrLab)
		assert.Less(t, time.Since(start), 10*time.Second, "waited for the browser instead of killing it")
		// SIGKILLed processes take a moment to die under load.
		var live []string
		assert.Eventually(t, func() bool { live = liveChromiums(t); return len(live) == 0 }, 5*time.Second, 50*time.Millisecond,
			"browser processes left behind: %v", live)
	})
}

func TestFindChromiumWithoutBrowser(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := FindChromium()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "install the Debian package chromium")
}

// liveChromiums lists the non-zombie processes started with one of our
// throw-away profiles.
func liveChromiums(t *testing.T) []string {
	t.Helper()
	var live []string
	procs, err := filepath.Glob("/proc/[0-9]*")
	require.NoError(t, err)
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "ddhil-chromium-") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			continue
		}
		live = append(live, p+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return live
}

func rgba(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// countNear counts pixels in rect within ±6 per channel of want.
func countNear(img image.Image, rect image.Rectangle, want color.RGBA) int {
	near := func(a, b uint8) bool { return int(a)-int(b) <= 6 && int(b)-int(a) <= 6 }
	n := 0
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		for x := rect.Min.X; x < rect.Max.X; x++ {
			c := rgba(img.At(x, y))
			if near(c.R, want.R) && near(c.G, want.G) && near(c.B, want.B) {
				n++
			}
		}
	}
	return n
}

func keepScreenshot(t *testing.T, src, name string) {
	dir := os.Getenv("DDHIL_REPORT_SCREENSHOTS")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
}
