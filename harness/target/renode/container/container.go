// Package container starts an emulator in a Docker container through
// testcontainers-go: image and command, files copied in, TCP ports
// published on random host ports, logs streamed to a writer, readiness
// from a log line, and termination on every path. The Renode driver uses it
// for the antmicro/renode image; its tests run QEMU through the same code,
// because Renode's image cannot be pulled in this project's CI.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/ddhil/ddhil/harness"
)

var (
	// ErrNoDocker means no Docker engine answered.
	ErrNoDocker = errors.New("container: no Docker engine")
	// ErrImageMissing means the image is neither local nor pullable.
	ErrImageMissing = errors.New("container: image missing")
)

// File is copied into the container before it starts.
type File struct {
	HostPath      string
	ContainerPath string // absolute
	Mode          int64  // default 0o644
}

// Spec describes one container.
type Spec struct {
	Image          string
	Cmd            []string
	Env            map[string]string
	Files          []File
	Ports          []int          // container TCP ports to publish on random host ports
	Ready          *regexp.Regexp // log line that means the service is up
	StartupTimeout time.Duration  // for Ready; default 60 s
	Log            io.Writer      // container stdout and stderr as they come; nil discards
	PullHint       string         // appended to the missing-image error
}

// Container is a started container.
type Container struct {
	c    *testcontainers.DockerContainer
	once sync.Once
	err  error

	hostOnce sync.Once
	host     string
	hostErr  error
}

var ryukOnce sync.Once

// ryukDefault disables testcontainers' Ryuk reaper unless the user chose:
// its image (testcontainers/ryuk) cannot be pulled on offline machines, and
// Terminate already removes the container on every path. Setting
// TESTCONTAINERS_RYUK_DISABLED=false turns Ryuk back on. testcontainers
// reads the variable once per process, so this runs before its first use.
func ryukDefault() {
	ryukOnce.Do(func() {
		if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
	})
}

// logWriter adapts an io.Writer to testcontainers' logger and log consumer.
type logWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logWriter) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "testcontainers: "+format+"\n", v...)
}

func (l *logWriter) Accept(entry testcontainers.Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(entry.Content)
}

// Available reports whether a Docker engine answers.
func Available(ctx context.Context) error {
	ryukDefault()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return harness.LabError(fmt.Errorf("%w: %v", ErrNoDocker, err))
	}
	defer cli.Close()
	return nil
}

// Start creates and starts the container and waits for spec.Ready. On any
// failure the container is removed before Start returns.
func Start(ctx context.Context, spec Spec) (*Container, error) {
	ryukDefault()
	if spec.Image == "" {
		return nil, errors.New("container: no image")
	}
	if spec.Log == nil {
		spec.Log = io.Discard
	}
	if spec.StartupTimeout == 0 {
		spec.StartupTimeout = 60 * time.Second
	}
	lw := &logWriter{w: spec.Log}

	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("%w: %v (start Docker, or use a local binary)", ErrNoDocker, err))
	}
	_, inspectErr := cli.ImageInspect(ctx, spec.Image)
	cli.Close()
	local := inspectErr == nil

	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(lw),
		testcontainers.WithCmd(spec.Cmd...),
		testcontainers.WithEnv(spec.Env),
		testcontainers.WithLogConsumerConfig(&testcontainers.LogConsumerConfig{Consumers: []testcontainers.LogConsumer{lw}}),
	}
	var ports []string
	for _, p := range spec.Ports {
		ports = append(ports, strconv.Itoa(p)+"/tcp")
	}
	if len(ports) > 0 {
		opts = append(opts, testcontainers.WithExposedPorts(ports...))
	}
	for _, f := range spec.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		opts = append(opts, testcontainers.WithFiles(testcontainers.ContainerFile{
			HostFilePath: f.HostPath, ContainerFilePath: f.ContainerPath, FileMode: mode}))
	}
	if spec.Ready != nil {
		opts = append(opts, testcontainers.WithWaitStrategy(
			wait.ForLog(spec.Ready.String()).AsRegexp().WithStartupTimeout(spec.StartupTimeout).WithPollInterval(50*time.Millisecond)))
	}

	c, err := testcontainers.Run(ctx, spec.Image, opts...)
	if err != nil {
		if c != nil {
			tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = c.Terminate(tctx)
		}
		if !local && !errdefs.IsNotFound(inspectErr) {
			return nil, harness.LabError(fmt.Errorf("container: inspect %s: %w", spec.Image, inspectErr))
		}
		if !local {
			return nil, harness.LabError(fmt.Errorf("%w: %s is not available locally and could not be pulled: %v%s",
				ErrImageMissing, spec.Image, err, spec.PullHint))
		}
		return nil, harness.LabError(fmt.Errorf("container: %s: %w", spec.Image, err))
	}
	return &Container{c: c}, nil
}

// ID is the container id.
func (c *Container) ID() string { return c.c.GetContainerID() }

// Addr is the host:port on which container port p is published.
func (c *Container) Addr(ctx context.Context, p int) (string, error) {
	mapped, err := c.c.MappedPort(ctx, strconv.Itoa(p)+"/tcp")
	if err != nil {
		return "", harness.LabError(fmt.Errorf("container: port %d: %w", p, err))
	}
	host, err := c.publishedHost(ctx)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, mapped.Port()), nil
}

// publishedHost is where published ports can be reached. testcontainers
// guesses the default gateway whenever it runs inside a container, which is
// wrong when the engine itself runs in our network namespace (Docker in
// Docker sharing the namespace: the engine's bridge interface is one of
// ours); then published ports are on 127.0.0.1. TESTCONTAINERS_HOST_OVERRIDE
// still wins.
func (c *Container) publishedHost(ctx context.Context) (string, error) {
	c.hostOnce.Do(func() {
		c.host, c.hostErr = c.c.Host(ctx)
		if c.hostErr != nil {
			c.hostErr = harness.LabError(fmt.Errorf("container: docker host: %w", c.hostErr))
			return
		}
		if _, set := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); set {
			return
		}
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			return
		}
		defer cli.Close()
		if !strings.HasPrefix(cli.DaemonHost(), "unix://") {
			return
		}
		nw, err := cli.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{})
		if err != nil {
			return
		}
		if name := nw.Network.Options["com.docker.network.bridge.name"]; name != "" {
			if _, err := net.InterfaceByName(name); err == nil {
				c.host = "127.0.0.1"
			}
		}
	})
	return c.host, c.hostErr
}

// Running reports whether the container is still running.
func (c *Container) Running(ctx context.Context) (bool, error) {
	st, err := c.c.State(ctx)
	if err != nil {
		return false, harness.LabError(fmt.Errorf("container: state: %w", err))
	}
	return st.Running, nil
}

// Terminate stops and removes the container; later calls return the first
// result. The stop grace period is 2 s, after which Docker kills.
func (c *Container) Terminate(ctx context.Context) error {
	c.once.Do(func() {
		err := c.c.Terminate(ctx, testcontainers.StopTimeout(2*time.Second))
		if err != nil {
			c.err = harness.LabError(fmt.Errorf("container: terminate: %w", err))
		}
	})
	return c.err
}
