package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
)

const cliWait = 10 * time.Second

// brokerRun is `ddhil broker` running in the background with its stdout
// split into lines.
type brokerRun struct {
	lines  chan string
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	err    error
	stderr bytes.Buffer
}

func startBrokerCLI(t *testing.T, args ...string) *brokerRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	r := &brokerRun{lines: make(chan string, 256), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	go func() {
		defer close(r.done)
		r.code, r.err = runBroker(ctx, args, pw, &r.stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(cliWait):
			t.Error("ddhil broker did not stop")
		}
	})
	return r
}

// line waits for the next stdout line containing want and returns it.
func (r *brokerRun) line(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(cliWait)
	var seen []string
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("stdout ended before %q; saw %q; stderr %q", want, seen, r.stderr.String())
			}
			if strings.Contains(l, want) {
				return l
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no line with %q within %s; saw %q", want, cliWait, seen)
		}
	}
}

func (r *brokerRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(cliWait):
		t.Fatal("ddhil broker did not stop")
	}
}

func connectCLI(t *testing.T, url, clientID string, conf *tls.Config) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectTimeout(cliWait).SetTLSConfig(conf)
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(cliWait))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publishCLI(t *testing.T, c paho.Client, topic string, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(cliWait))
	require.NoError(t, tok.Error())
}

func TestBrokerCommand(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, certs.InitCA(dir, nil))
	_, _, err := certs.IssueDevice(dir, "dev-1", nil)
	require.NoError(t, err)
	record := filepath.Join(t.TempDir(), "events.jsonl")

	r := startBrokerCLI(t, "--mqtt", "127.0.0.1:0", "--mqtts", "127.0.0.1:0", "--tls-dir", dir,
		"--throttle", "0", "--record", record)
	plain := strings.TrimPrefix(r.line(t, "mqtt listening on "), "mqtt listening on ")
	secure := strings.TrimPrefix(r.line(t, "mqtts listening on "), "mqtts listening on ")
	for _, a := range []string{plain, secure} {
		_, port, err := net.SplitHostPort(a)
		require.NoError(t, err)
		assert.NotEqual(t, "0", port)
	}

	c := connectCLI(t, "tcp://"+plain, "dev-1", nil)
	r.line(t, `connect client="dev-1"`)
	publishCLI(t, c, "$aws/things/dev-1/defender/metrics/json", `{"header":{"report_id":1,"version":"1.0"},"metrics":{}}`)
	assert.Contains(t, r.line(t, "report "), "report_id=1 ACCEPTED")
	publishCLI(t, c, "$aws/things/dev-1/defender/metrics/json", `{"header":{"report_id":2,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":0}]}}}`)
	assert.Contains(t, r.line(t, "report "), "report_id=2 REJECTED InvalidPayload")

	conf, err := certs.ClientTLSConfig(dir, "dev-1", "127.0.0.1")
	require.NoError(t, err)
	connectCLI(t, "tls://"+secure, "dev-1-tls", conf)
	assert.Contains(t, r.line(t, `connect client="dev-1-tls"`), `cn="dev-1"`)

	r.stop(t)
	require.NoError(t, r.err)
	assert.Equal(t, exitOK, r.code)
	last := r.line(t, "broker stopped after")
	assert.Contains(t, last, record)

	f, err := os.Open(record)
	require.NoError(t, err)
	defer f.Close()
	events, err := broker.ReadJSONL(f)
	require.NoError(t, err)
	assert.Contains(t, last, fmt.Sprintf("after %d events", len(events)), "the record holds every event")
	reports := 0
	for _, ev := range events {
		if ev.Kind == broker.EventReport {
			reports++
		}
	}
	assert.Equal(t, 2, reports)
}

func TestBrokerCommandErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"--nope"}, exitUsage, "not defined"},
		{"extra argument", []string{"--mqtt", "127.0.0.1:0", "extra"}, exitUsage, "unexpected argument"},
		{"mqtts without tls", []string{"--mqtt", "127.0.0.1:0", "--mqtts", "127.0.0.1:0"}, exitUsage, "--mqtts needs"},
		{"partial tls files", []string{"--mqtt", "127.0.0.1:0", "--tls-ca", "ca.pem"}, exitUsage, "all of"},
		{"tls dir and files", []string{"--mqtt", "127.0.0.1:0", "--tls-dir", "d", "--tls-ca", "ca.pem"}, exitUsage, "not both"},
		{"bad policy", []string{"--mqtt", "127.0.0.1:0", "--policy", "lax"}, exitUsage, "unknown policy"},
		{"bad duplicate policy", []string{"--mqtt", "127.0.0.1:0", "--duplicate-ids", "keep"}, exitUsage, "duplicate"},
		{"negative throttle", []string{"--mqtt", "127.0.0.1:0", "--throttle", "-1s"}, exitUsage, "negative"},
		{"missing tls dir", []string{"--mqtt", "127.0.0.1:0", "--tls-dir", filepath.Join(t.TempDir(), "none")}, exitLab, "server certificate"},
		{"address in use", []string{"--mqtt", busy.Addr().String()}, exitLab, "listen tcp"},
		{"record in missing directory", []string{"--mqtt", "127.0.0.1:0", "--record", filepath.Join(t.TempDir(), "no", "x.jsonl")}, exitLab, "record file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), cliWait)
			defer cancel()
			var out, errOut bytes.Buffer
			code, err := runBroker(ctx, tc.args, &out, &errOut)
			require.Error(t, err)
			assert.Equal(t, tc.wantCode, code)
			assert.Equal(t, tc.wantCode, exitCode(err), "dispatch maps the error to the same code")
			assert.Contains(t, err.Error()+errOut.String(), tc.wantErr)
		})
	}
}
