package report

import (
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func needChromium(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	if _, err := FindChromium(); err != nil {
		t.Skipf("%v", err)
	}
}

// TestChromiumScreenshotCoversWholePage: report.png is as tall as the page,
// so the evidence below the first screen is in it.
func TestChromiumScreenshotCoversWholePage(t *testing.T) {
	needChromium(t)
	dir := t.TempDir()
	require.NoError(t, WriteAll(dir, sampleWithVerdict(Fail)))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	htmlPath, pngPath := filepath.Join(dir, FileHTML), filepath.Join(dir, FileScreenshot)
	h, err := PageHeight(ctx, htmlPath, 1280)
	require.NoError(t, err)
	assert.Greater(t, h, 2000, "the sample is taller than the old fixed 2000 px shot")
	require.NoError(t, ScreenshotPage(ctx, htmlPath, pngPath, 1280))
	keepScreenshot(t, pngPath, "whole-page.png")
	f, err := os.Open(pngPath)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, 1280, img.Bounds().Dx())
	assert.Equal(t, h, img.Bounds().Dy(), "the screenshot is the whole page")
}

// overlapScript counts the pairs of timeline labels whose boxes, as the
// browser lays them out, intersect, and the labels that leave the SVG.
const overlapScript = `(function(){
var svg=document.querySelector('svg.timeline'),sb=svg.getBoundingClientRect();
var ts=[].slice.call(svg.querySelectorAll('text')).map(function(t){return t.getBoundingClientRect();});
var n=0,out=0;
for(var i=0;i<ts.length;i++){var a=ts[i];
 if(a.left<sb.left-0.5||a.right>sb.right+0.5)out++;
 for(var j=i+1;j<ts.length;j++){var b=ts[j];
  if(a.left<b.right-0.5&&b.left<a.right-0.5&&a.top<b.bottom-0.5&&b.top<a.bottom-0.5)n++;}}
return ts.length+' '+n+' '+out;})()`

// TestChromiumTimelineLabels renders generated runs of 30 and 100 periods
// in a real browser at three widths and measures every label of the
// timeline: none overlaps another, none leaves the drawing.
func TestChromiumTimelineLabels(t *testing.T) {
	needChromium(t)
	// Each measurement starts a browser (several seconds on a busy host):
	// the widest and the narrowest page for each length.
	for _, n := range []int{30, 100} {
		dir := t.TempDir()
		require.NoError(t, WriteAll(dir, runReport(n)))
		for _, width := range []int{1400, 500} {
			t.Run(fmt.Sprintf("%d periods at %d px", n, width), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				out, err := evalInPage(ctx, filepath.Join(dir, FileHTML), width, overlapScript)
				require.NoError(t, err)
				var labels, overlaps, outside int
				_, err = fmt.Sscan(out, &labels, &overlaps, &outside)
				require.NoError(t, err, out)
				assert.Greater(t, labels, 20, "labels measured")
				assert.Zero(t, overlaps, "overlapping label pairs")
				assert.Zero(t, outside, "labels outside the timeline")
				if os.Getenv("DDHIL_REPORT_SCREENSHOTS") != "" {
					png := filepath.Join(dir, "tl-"+strconv.Itoa(width)+".png")
					require.NoError(t, ScreenshotPage(ctx, filepath.Join(dir, FileHTML), png, width))
					keepScreenshot(t, png, fmt.Sprintf("timeline-%d-%d.png", n, width))
				}
			})
		}
	}
}
