package mosquitto

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/ddhil/ddhil/broker/defender"
)

// ReportFilter is what the responder subscribes to: every thing's report
// topics, both formats (and, harmlessly, their response topics, which it
// skips).
const ReportFilter = "$aws/things/+/defender/metrics/+"

// Responder is the validating Device Defender responder on top of a plain
// broker: what a user without ddhil would write. It answers in the
// report's format, with the same validator as ddhil's broker; it keeps no
// per-thing state (no throttle, no duplicate check).
type Responder struct {
	c                  paho.Client
	Accepted, Rejected atomic.Uint64
	Errors             atomic.Uint64
}

// StartResponder connects to addr and subscribes, within ctx.
func StartResponder(ctx context.Context, addr string) (*Responder, error) {
	r := &Responder{}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID("ddhil-defender-responder").
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetOrderMatters(false). // handle reports concurrently
		SetWriteTimeout(10 * time.Second)
	r.c = paho.NewClient(opts)
	if err := wait(ctx, r.c.Connect()); err != nil {
		return nil, fmt.Errorf("responder: connect to %s: %w", addr, err)
	}
	if err := wait(ctx, r.c.Subscribe(ReportFilter, 1, r.handle)); err != nil {
		r.c.Disconnect(0)
		return nil, fmt.Errorf("responder: subscribe %s: %w", ReportFilter, err)
	}
	return r, nil
}

func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle validates one report and publishes the answer.
func (r *Responder) handle(_ paho.Client, m paho.Message) {
	kind, thing, ok := defender.MatchTopic(m.Topic())
	if !ok || !kind.IsPublish() {
		return
	}
	f := kind.Format()
	res := defender.Validate(f, m.Payload(), defender.Options{})
	resp := defender.Response{ThingName: thing, Status: defender.StatusAccepted, Timestamp: time.Now().UnixMilli()}
	if res.HeaderParsed {
		id := res.ReportID
		resp.ReportID = &id
	}
	if !res.Accepted() {
		resp.Status = defender.StatusRejected
		resp.StatusDetails = &defender.StatusDetails{ErrorCode: res.Problem.Code, ErrorMessage: res.Problem.Message}
	}
	payload, err := defender.EncodeResponse(f, resp)
	if err != nil {
		r.Errors.Add(1)
		return
	}
	r.c.Publish(defender.ResponseTopic(thing, f, res.Accepted()), 1, false, payload)
	if res.Accepted() {
		r.Accepted.Add(1)
	} else {
		r.Rejected.Add(1)
	}
}

// Close disconnects, leaving 250 ms for queued answers to go out.
func (r *Responder) Close() {
	r.c.Disconnect(250)
}

// ServeResponder runs a responder as a process of its own, driven by a
// parent over in/out: it prints "ready" once subscribed, answers reports
// until in says "stop" (or closes), then prints "done <accepted> <rejected>
// <peak RSS bytes>".
func ServeResponder(ctx context.Context, addr string, in io.Reader, out io.Writer) error {
	r, err := StartResponder(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() && sc.Text() != "stop" {
	}
	r.Close()
	rss, _ := peakRSS()
	fmt.Fprintf(out, "done %d %d %d\n", r.Accepted.Load(), r.Rejected.Load(), rss)
	return nil
}

// peakRSS is this process's VmHWM in bytes.
func peakRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
