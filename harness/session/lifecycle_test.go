package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/targettest"
)

// fakeProfile drives the scripted CLI of cli below.
const fakeProfile = `
name: fake
console:
  prompt: "> "
  log_pattern: '^\[\d{8}\] '
  error_pattern: '^Error: '
  sync_empty_line: true
boot:
  marker: '^\[\d{8}\] boot: fake boot=(?P<boot>\d+)$'
  timeout: 300ms
provision:
  - name: thing
    send: conf thing {{thing}}
    expect: '^thing={{thing}}$'
expectations:
  transport: module
  test_period: 1s
`

// cli is a firmware with a console: a boot banner, a prompt, "conf thing
// X" answered with "thing=X". halfLine, when set, is printed (without its
// end) right after the banner of boot 1, so a reset cuts it.
type cli struct {
	mu       sync.Mutex
	received []string
	halfLine string
	noBanner bool // boots after the first print nothing (a firmware that hangs)
}

func (c *cli) run(ctx context.Context, d *targettest.Device) {
	if d.Boot > 1 && c.noBanner {
		<-ctx.Done()
		return
	}
	d.Println(fmt.Sprintf("[%08d] boot: fake boot=%d", 0, d.Boot))
	d.Print("> ")
	for {
		l, err := d.ReadLine()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.received = append(c.received, l)
		c.mu.Unlock()
		d.Print("\r\n")
		v, conf := strings.CutPrefix(l, "conf thing ")
		if conf {
			d.Println("thing=" + v)
		}
		d.Print("> ")
		if conf && d.Boot == 1 && c.halfLine != "" {
			// A log line the reset will cut (the firmware redraws the
			// prompt after a log line, so the prompt is gone).
			d.Print("\r\x1b[K" + c.halfLine)
		}
	}
}

func (c *cli) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.received...)
}

func startFake(t *testing.T, fw targettest.Firmware, opts targettest.Options) (*Session, *targettest.Target, error) {
	t.Helper()
	prof, err := profile.Parse([]byte(fakeProfile))
	require.NoError(t, err)
	tgt := targettest.New(fw, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{Target: tgt, Profile: prof, Vars: profile.Vars{"thing": "dut-fake"},
		BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, OutDir: t.TempDir()})
	if s != nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, targettest.Unwrap(tgt), err
}

// Start boots, provisions over the console and leaves the device running;
// Close reaps the target.
func TestFakeStartProvisionClose(t *testing.T) {
	c := &cli{}
	s, tgt, err := startFake(t, c.run, targettest.Options{})
	require.NoError(t, err)
	assert.Contains(t, c.got(), "conf thing dut-fake", "provisioned over the console")
	require.NoError(t, s.Close())
	assert.True(t, tgt.Closed(), "Close closes the target")
	require.NoError(t, s.Close(), "Close twice is safe")
}

// A reset while the firmware is half-way through a line: the boot marker
// of the next boot still matches and Reset returns; the reset is recorded.
func TestFakeResetMidLine(t *testing.T) {
	c := &cli{halfLine: "[00008511] report: published id=8509 form"}
	s, tgt, err := startFake(t, c.run, targettest.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Reset(ctx))
	assert.Equal(t, 1, tgt.Resets())
	assert.Contains(t, s.Console().Dropped(), "[00008511] report: published id=8509 form")
	capture, err := s.Capture()
	require.NoError(t, err)
	assert.Len(t, capture.ActionsOf(conformance.ActionReset), 1)
}

// A firmware that does not boot after a reset: Reset fails naming the
// boot marker, and it is not a lab error.
func TestFakeResetWithoutBoot(t *testing.T) {
	c := &cli{noBanner: true}
	s, _, err := startFake(t, c.run, targettest.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Reset(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boot")
	assert.NotErrorIs(t, err, harness.ErrLab)
}

// A target that dies of the firmware during boot: Start fails with the
// crash, and the target is reaped.
func TestFakeCrashDuringBoot(t *testing.T) {
	crash := fmt.Errorf("fake: Lockup: %w", harness.ErrFirmwareCrash)
	_, tgt, err := startFake(t, func(ctx context.Context, d *targettest.Device) {
		d.Print("[00000000] boo")
		d.Crash(crash)
	}, targettest.Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrFirmwareCrash)
	assert.True(t, tgt.Closed(), "reaped")
}

// A target that cannot tell it died (a board, Renode): its console closing
// is a lab error, never a timeout or a firmware failure.
func TestFakeConsoleClosedIsLab(t *testing.T) {
	_, _, err := startFake(t, func(ctx context.Context, d *targettest.Device) {
		d.Crash(errors.New("port vanished"))
	}, targettest.Options{NoExit: true})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}

// readyTarget asks for a short module power-up delay, as Renode does under
// time compression.
type readyTarget struct{ target.Target }

func (readyTarget) ConfigureSession(s *target.SessionSetup) error {
	s.ModuleReadyDelay = 10 * time.Millisecond
	return nil
}

// A target's module power-up delay reaches the module's config, unless the
// caller set one.
func TestTargetSetsModuleReadyDelay(t *testing.T) {
	prof, err := profile.Parse([]byte(fakeProfile))
	require.NoError(t, err)
	cfg := Config{Target: readyTarget{}, Profile: prof}
	require.NoError(t, configureForTarget(&cfg))
	assert.Equal(t, 10*time.Millisecond, cfg.Module.ReadyDelay)

	cfg = Config{Target: readyTarget{}, Profile: prof}
	cfg.Module.ReadyDelay = time.Second
	require.NoError(t, configureForTarget(&cfg))
	assert.Equal(t, time.Second, cfg.Module.ReadyDelay, "the caller's choice stays")
}
