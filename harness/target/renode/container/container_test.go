package container

import (
	"bufio"
	"context"
	"fmt"
	"github.com/ddhil/ddhil/internal/syncbuf"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target/renode/internal/dockertest"
)

func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Available(ctx); err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
}

// buildEchoFirmware compiles testdata/fw/echo_irq.c (our probe firmware for
// stm32f4: "echo ready", then an RXNE-interrupt echo on USART2), which also
// runs on QEMU's netduinoplus2 (same USART2 address, RXNE IRQ modelled).
func buildEchoFirmware(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		t.Skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
	}
	out := filepath.Join(t.TempDir(), "echo_irq.elf")
	cmd := exec.Command(gcc, "-mcpu=cortex-m4", "-mthumb", "-Os", "-ffreestanding", "-fno-builtin", "-std=c11",
		"-nostdlib", "-T", "testdata/fw/stm32f4.ld", "-Wl,--gc-sections", "-o", out,
		"testdata/fw/startup.c", "testdata/fw/echo_irq.c", "-lgcc")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	return out
}

// qemuImage builds ddhil-test/qemu-arm:<pid> FROM scratch holding Debian's
// qemu-system-arm and its shared libraries, and removes it after the test.
func qemuImage(t *testing.T) string {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		t.Skip("qemu-system-arm not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	files, err := dockertest.Closure(ctx, qemu)
	require.NoError(t, err)
	tag := fmt.Sprintf("ddhil-test/qemu-arm:%d", os.Getpid())
	start := time.Now()
	require.NoError(t, dockertest.BuildImage(ctx, tag, dockertest.SamePaths(files)))
	t.Logf("built %s from %d host files in %v", tag, len(files), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, dockertest.RemoveImage(ctx, tag))
	})
	return tag
}

// QEMU stands in for Renode here: a real emulator started through the same
// Start code path (image, command, copied firmware, published port, log
// streaming, readiness on a log line, termination).
func TestQEMUThroughContainerPath(t *testing.T) {
	requireDocker(t)
	fw := buildEchoFirmware(t)
	image := qemuImage(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &syncbuf.Buffer{}
	const uartPort = 4000
	c, err := Start(ctx, Spec{
		Image: image,
		Cmd: []string{"/usr/bin/qemu-system-arm", "-M", "netduinoplus2", "-display", "none", "-monitor", "none",
			"-serial", "null", "-serial", fmt.Sprintf("tcp::%d,server=on,wait=on", uartPort), "-kernel", "/fw/echo_irq.elf"},
		Files:          []File{{HostPath: fw, ContainerPath: "/fw/echo_irq.elf"}},
		Ports:          []int{uartPort},
		Ready:          regexp.MustCompile(fmt.Sprintf(`QEMU waiting for connection on: \S+:%d`, uartPort)),
		StartupTimeout: 30 * time.Second,
		Log:            logs,
	})
	require.NoError(t, err)
	id := c.ID()
	t.Cleanup(func() { _ = c.Terminate(context.Background()) })

	addr, err := c.Addr(ctx, uartPort)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo ready\r\n", line)
	_, err = conn.Write([]byte("ping through docker\n"))
	require.NoError(t, err)
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ping through docker\n", line)

	running, err := c.Running(ctx)
	require.NoError(t, err)
	assert.True(t, running)
	assert.Contains(t, logs.String(), "QEMU waiting for connection on:", "container stderr is streamed to Spec.Log")

	require.NoError(t, c.Terminate(ctx))
	require.NoError(t, c.Terminate(ctx), "Terminate is idempotent")
	exists, err := dockertest.ContainerExists(ctx, id)
	require.NoError(t, err)
	assert.False(t, exists, "container removed")
	_, err = io.ReadAll(r) // QEMU died: the socket closes
	assert.NoError(t, err)
}

// A container that exits before its ready line fails fast with a lab error
// and is removed.
func TestStartFailsWhenProcessExits(t *testing.T) {
	requireDocker(t)
	image := qemuImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &syncbuf.Buffer{}
	start := time.Now()
	_, err := Start(ctx, Spec{
		Image:          image,
		Cmd:            []string{"/usr/bin/qemu-system-arm", "-M", "no-such-machine"},
		Ready:          regexp.MustCompile(`never printed`),
		StartupTimeout: 60 * time.Second,
		Log:            logs,
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Less(t, time.Since(start), 30*time.Second, "exit is noticed before the startup timeout")
	n, lerr := dockertest.ContainersFrom(ctx, image)
	require.NoError(t, lerr)
	assert.Zero(t, n, "failed container removed")
	assert.Contains(t, logs.String(), "qemu-system-arm: unsupported machine type", "the exiting process's output reaches Spec.Log")
	assert.Contains(t, err.Error(), "container exited with code 1")
}

func TestImageMissing(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Start(ctx, Spec{Image: "ddhil-test/never-built:0", Cmd: []string{"x"}, PullHint: "; build it first"})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrImageMissing)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "ddhil-test/never-built:0 is not available locally and could not be pulled")
	assert.True(t, strings.HasSuffix(err.Error(), "; build it first"))
}

func TestRyukDisabledUnlessChosen(t *testing.T) {
	ryukDefault()
	v, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED")
	require.True(t, ok, "ryukDefault sets the variable when the user did not")
	if userChoice != "" {
		assert.Equal(t, userChoice, v, "the user's choice is kept")
	} else {
		assert.Equal(t, "true", v)
	}
}

// userChoice is TESTCONTAINERS_RYUK_DISABLED as the test process got it.
var userChoice = os.Getenv("TESTCONTAINERS_RYUK_DISABLED")
