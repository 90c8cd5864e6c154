package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/internal/proc"
)

// Headless Chromium turns report.html into report.png for CI artefacts and
// lets tests check what a browser really renders. Debian ships the browser
// as "chromium", Ubuntu and others as "chromium-browser".

// chromiumNames are the executable names tried, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// FindChromium returns the path of a Chromium-family browser, or an error
// wrapping harness.ErrLab that says what to install.
func FindChromium() (string, error) {
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", harness.LabError(fmt.Errorf("report: no chromium in PATH (tried %v): install the Debian package chromium", chromiumNames))
}

// Screenshot renders the HTML file at htmlPath with headless Chromium into a
// PNG of width×height pixels at pngPath.
func Screenshot(ctx context.Context, htmlPath, pngPath string, width, height int) error {
	abs, err := filepath.Abs(pngPath)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := runChromium(ctx, htmlPath, "--screenshot="+abs,
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height)); err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("report: chromium wrote no screenshot: %w", err)
	}
	return nil
}

// maxPageHeight bounds a full-page screenshot: Chromium's software
// compositor gives up on taller surfaces.
const maxPageHeight = 16384

// ScreenshotPage renders the whole page at htmlPath, top to bottom, at the
// given width: it measures the page's height at that width in the browser
// first, then screenshots exactly that much (at most maxPageHeight).
func ScreenshotPage(ctx context.Context, htmlPath, pngPath string, width int) error {
	h, err := PageHeight(ctx, htmlPath, width)
	if err != nil {
		return err
	}
	return Screenshot(ctx, htmlPath, pngPath, width, min(h, maxPageHeight))
}

// PageHeight is the height in CSS pixels of the page at htmlPath laid out
// at the given width.
func PageHeight(ctx context.Context, htmlPath string, width int) (int, error) {
	out, err := evalInPage(ctx, htmlPath, width, "Math.ceil(document.documentElement.scrollHeight)")
	if err != nil {
		return 0, err
	}
	h, err := strconv.Atoi(out)
	if err != nil || h <= 0 {
		return 0, harness.LabError(fmt.Errorf("report: chromium measured no page height (got %q)", out))
	}
	return h, nil
}

// evalInPage loads a copy of the HTML file with a script appended that
// evaluates expr once the page is laid out, and returns the result as a
// string. The report itself carries no script; only the copy does.
func evalInPage(ctx context.Context, htmlPath string, width int, expr string) (string, error) {
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	dir, err := os.MkdirTemp("", "ddhil-measure-")
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	defer os.RemoveAll(dir)
	const marker = "ddhil-result:"
	script := "<script>document.body.setAttribute('data-ddhil', '" + marker + "' + String(" + expr + "));</script>"
	if i := bytes.LastIndex(page, []byte("</body>")); i >= 0 {
		page = append(page[:i:i], append([]byte(script), page[i:]...)...)
	} else {
		page = append(page, script...)
	}
	copyPath := filepath.Join(dir, filepath.Base(htmlPath))
	if err := os.WriteFile(copyPath, page, 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	dom, err := runChromium(ctx, copyPath, "--dump-dom", "--window-size="+strconv.Itoa(width)+",800")
	if err != nil {
		return "", err
	}
	_, after, ok := strings.Cut(dom, `data-ddhil="`+marker)
	if !ok {
		return "", harness.LabError(fmt.Errorf("report: chromium ran no script on %s", htmlPath))
	}
	val, _, _ := strings.Cut(after, `"`)
	return html.UnescapeString(val), nil
}

// DumpDOM returns the DOM Chromium builds from the HTML file, serialised.
func DumpDOM(ctx context.Context, htmlPath string) (string, error) {
	return runChromium(ctx, htmlPath, "--dump-dom")
}

// runChromium runs one headless Chromium in its own process group with a
// throw-away profile, kills the whole group when ctx ends or the browser
// exits, and returns its stdout.
func runChromium(ctx context.Context, htmlPath string, args ...string) (string, error) {
	bin, err := FindChromium()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	profile, err := proc.TempDir("ddhil-chromium-")
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	defer os.RemoveAll(profile)

	full := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--force-color-profile=srgb", "--force-device-scale-factor=1",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + profile,
	}, args...)
	full = append(full, (&url.URL{Scheme: "file", Path: abs}).String())

	cmd := exec.CommandContext(ctx, bin, full...)
	// The crash handler Chromium forks leaves our process group (setsid);
	// with its database in our profile it is findable there, and nothing
	// is written to the user's ~/.config.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+filepath.Join(profile, "cache"))
	cmd.SysProcAttr = proc.Attr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 5 * time.Second
	// Files, not pipes: Wait then returns when the browser exits even if a
	// helper process still holds them open.
	stdout, err := os.Create(filepath.Join(profile, "stdout"))
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(profile, "stderr"))
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return "", harness.LabError(fmt.Errorf("report: start chromium: %w", err))
	}
	err = cmd.Wait()
	_ = killGroup(cmd.Process.Pid) // zygotes, renderers and utilities go with it
	killStragglers(profile)
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	if ctx.Err() != nil {
		return "", harness.LabError(fmt.Errorf("report: chromium did not finish: %w (stderr: %s)", ctx.Err(), tail(errOut)))
	}
	if err != nil {
		return "", harness.LabError(fmt.Errorf("report: chromium: %w (stderr: %s)", err, tail(errOut)))
	}
	return string(out), nil
}

func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// killStragglers kills, by pid, the processes that left the group but were
// started for this run: their command line names our throw-away profile.
func killStragglers(profile string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(profile)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// tail keeps the end of a process's stderr for an error message.
func tail(b []byte) string {
	const n = 600
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
