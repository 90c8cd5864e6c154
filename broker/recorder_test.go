package broker

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ddhil/ddhil/internal/syncbuf"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// TestEventLogSession checks the events of one whole device session, in
// order, and that the JSON Lines recording round-trips byte for byte.
func TestEventLogSession(t *testing.T) {
	var rec syncbuf.Buffer
	b, err := New(Config{Record: &rec})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { _ = b.Close() })

	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.connect("dev-log", true)
	rc.subscribe(1, topicOf("dev-log", defender.JSONAccepted), 1)
	rc.publish(topicOf("dev-log", defender.JSONPublish), 0, false, 0, reportJSON(3))
	rc.expect(packets.Publish)
	waitEvent(t, b, "response", kindIs(EventResponse, "dev-log"))
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rc.expectClosed()
	waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "dev-log"))
	require.NoError(t, b.Close())

	events := b.Events()
	var kinds []EventKind
	for i, ev := range events {
		assert.Equal(t, uint64(i+1), ev.Seq, "Seq counts from 1 without gaps")
		if i > 0 {
			assert.GreaterOrEqual(t, ev.Mono, events[i-1].Mono, "Mono never goes back")
		}
		assert.Equal(t, "tcp-1", ev.ConnID)
		assert.Equal(t, "dev-log", ev.ClientID)
		assert.Equal(t, "tcp", ev.Listener)
		assert.NotEmpty(t, ev.Remote)
		if ev.Kind == EventDeliver { // recorded by the writer goroutine: its place is not fixed
			assert.Positive(t, ev.Size, "a delivery records the payload size")
			continue
		}
		kinds = append(kinds, ev.Kind)
	}
	assert.Equal(t, []EventKind{EventConnect, EventSubscribe, EventPublish, EventReport, EventMeter,
		EventResponse, EventMeter, EventDisconnect}, kinds)

	byKind := map[EventKind]Event{}
	for _, ev := range events {
		byKind[ev.Kind] = ev
	}
	assert.Equal(t, ConnectInfo{ProtocolVersion: 4, CleanSession: true, KeepAlive: 30}, *byKind[EventConnect].Connect)
	assert.Equal(t, reportJSON(3), byKind[EventPublish].Payload, "publish keeps the raw payload")
	assert.Equal(t, len(reportJSON(3)), byKind[EventPublish].Size, "publish records the whole payload size")
	assert.Equal(t, uint64(3), byKind[EventReport].Result.ReportID)
	assert.Equal(t, ReasonClientDisconnect, byKind[EventDisconnect].Reason)

	// JSON Lines: one object per event, read back equal, re-written identical.
	raw := rec.Bytes()
	assert.Equal(t, len(events), bytes.Count(raw, []byte("\n")))
	back, err := ReadJSONL(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, back, len(events))
	for i := range events {
		assert.True(t, events[i].Time.Equal(back[i].Time))
		back[i].Time = events[i].Time
	}
	assert.Equal(t, events, back)
	var again bytes.Buffer
	require.NoError(t, WriteJSONL(&again, back))
	assert.Equal(t, string(raw), again.String())
}

func TestReadJSONLErrors(t *testing.T) {
	cases := []struct {
		name    string
		input   string
		wantN   int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"blank lines skipped", "\n{\"seq\":1,\"kind\":\"connect\"}\n\n", 1, ""},
		{"bad second line", "{\"seq\":1,\"kind\":\"connect\"}\n{oops\n", 1, "line 2"},
		{"wrong type", "{\"seq\":\"x\"}\n", 0, "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := ReadJSONL(strings.NewReader(tc.input))
			assert.Len(t, evs, tc.wantN)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

func TestRecorderWaitAndSubscribe(t *testing.T) {
	r := NewRecorder(nil)
	ch, cancel := r.Subscribe(4)
	r.Record(Event{Kind: EventConnect})

	// A waiter blocked before the event arrives is woken by it.
	got := make(chan Event, 1)
	go func() {
		ev, err := r.WaitFor(context.Background(), func(ev Event) bool { return ev.Kind == EventReport })
		if err == nil {
			got <- ev
		}
	}()
	r.Record(Event{Kind: EventReport})
	select {
	case ev := <-got:
		assert.Equal(t, uint64(2), ev.Seq)
		assert.InDelta(t, float64(ev.Time.Sub(r.Started())), float64(ev.Mono), float64(time.Millisecond), "Mono counts from Started")
	case <-time.After(waitLimit):
		t.Fatal("WaitFor was not woken")
	}

	ev, err := r.WaitForAfter(testCtx(t), 1, func(Event) bool { return true })
	require.NoError(t, err)
	assert.Equal(t, uint64(2), ev.Seq)
	assert.Len(t, r.Since(1), 1)
	assert.Equal(t, uint64(2), r.Last())

	ctx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	_, err = r.WaitFor(ctx, func(ev Event) bool { return ev.Kind == EventPolicy })
	require.ErrorIs(t, err, context.DeadlineExceeded)

	assert.Equal(t, EventConnect, (<-ch).Kind)
	assert.Equal(t, EventReport, (<-ch).Kind)
	cancel()
	_, open := <-ch
	assert.False(t, open, "cancel closes the channel")
	cancel() // idempotent

	require.NoError(t, r.Close())
	_, err = r.WaitFor(context.Background(), func(ev Event) bool { return ev.Kind == EventPolicy })
	require.ErrorContains(t, err, "recorder closed")
	r.Record(Event{Kind: EventPolicy})
	assert.Len(t, r.Events(), 2, "nothing is recorded after Close")
	require.NoError(t, r.Close())
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestRecorderWriteError(t *testing.T) {
	r := NewRecorder(failingWriter{})
	r.Record(Event{Kind: EventConnect})
	err := r.Close()
	require.ErrorIs(t, err, io.ErrShortWrite)
	assert.Len(t, r.Events(), 1, "the in-memory log is unaffected")
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	buf     syncbuf.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.buf.Write(p)
}

// TestSlowConsumersDoNotStallClients: a subscriber that never reads and a
// recording writer that blocks do not slow the MQTT traffic; the
// subscriber loses events (counted), the recording loses none.
func TestSlowConsumersDoNotStallClients(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	b := startBroker(t, Config{Throttle: NoThrottle, Record: w})
	var once sync.Once
	release := func() { once.Do(func() { close(w.release) }) }
	t.Cleanup(release) // runs before the broker's Close

	_, cancel := b.Subscribe(1)
	defer cancel()
	d := newDevice(t, b, "thing-s")
	const reports = 50
	for id := uint64(1); id <= reports; id++ {
		resp, _ := d.report(t, defender.JSON, reportJSON(id))
		require.Equal(t, id, *resp.ReportID)
	}
	waitEvent(t, b, "last response", responseTo(reports))
	assert.Positive(t, b.Recorder().Dropped(), "the stuck subscriber lost events")

	release()
	require.NoError(t, b.Close())
	lines := bytes.Count(w.buf.Bytes(), []byte("\n"))
	assert.Equal(t, len(b.Events()), lines, "Close flushed every event to the recording")
}

func TestManySubscribersSeeSameOrder(t *testing.T) {
	r := NewRecorder(nil)
	a, ca := r.Subscribe(100)
	bch, cb := r.Subscribe(100)
	defer ca()
	defer cb()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				r.Record(Event{Kind: EventMeter, ConnID: fmt.Sprint(g)})
			}
		}()
	}
	wg.Wait()
	for i := uint64(1); i <= 80; i++ {
		assert.Equal(t, i, (<-a).Seq)
		assert.Equal(t, i, (<-bch).Seq)
	}
}
