package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// MonitorServer replays one telnet transcript to the first client that
// connects to it: every Renode record is written exactly as recorded, split
// into the recorded number of recv() chunks and paced over the recorded
// duration; every client record must arrive byte for byte. It stands in for
// Renode's monitor (`renode --port P`), which cannot run here.
type MonitorServer struct {
	tr           *Transcript
	placeholders map[string]string
	ln           net.Listener
	readTimeout  time.Duration

	mu       sync.Mutex
	err      error
	received []byte
	done     chan struct{}
	cancel   context.CancelFunc
}

// MonitorOption tunes a MonitorServer.
type MonitorOption func(*MonitorServer)

// WithReadTimeout bounds how long the server waits for each expected client
// record (default 10 s).
func WithReadTimeout(d time.Duration) MonitorOption {
	return func(s *MonitorServer) { s.readTimeout = d }
}

// StartMonitor listens on 127.0.0.1:0 and replays tr to the first client.
func StartMonitor(tr *Transcript, placeholders map[string]string, opts ...MonitorOption) (*MonitorServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &MonitorServer{tr: tr, placeholders: placeholders, ln: ln, readTimeout: 10 * time.Second,
		done: make(chan struct{}), cancel: cancel}
	for _, o := range opts {
		o(s)
	}
	go s.serve(ctx)
	return s, nil
}

// Addr is the host:port to dial.
func (s *MonitorServer) Addr() string { return s.ln.Addr().String() }

// Wait blocks until the whole transcript was replayed (or failed) and
// returns the first mismatch.
func (s *MonitorServer) Wait(ctx context.Context) error {
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("replay: %s not finished: %w", s.tr.Name, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Received is everything the client sent.
func (s *MonitorServer) Received() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.received...)
}

// Close stops the server and drops the connection.
func (s *MonitorServer) Close() error {
	s.cancel()
	err := s.ln.Close()
	<-s.done
	return err
}

func (s *MonitorServer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *MonitorServer) serve(ctx context.Context) {
	defer close(s.done)
	conn, err := s.ln.Accept()
	if err != nil {
		if ctx.Err() == nil {
			s.fail(fmt.Errorf("replay: accept: %w", err))
		}
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if err := s.replay(ctx, conn); err != nil {
		s.fail(err)
	}
}

func (s *MonitorServer) replay(ctx context.Context, conn net.Conn) error {
	base, baseAt := time.Now(), time.Duration(0)
	for _, rec := range s.tr.Records {
		data := Substitute(append([]byte(nil), rec.Data...), s.placeholders)
		switch rec.Dir {
		case EOF:
			if err := pace(ctx, time.Until(base.Add(rec.At-baseAt))); err != nil {
				return err
			}
			return nil // the deferred Close is Renode closing the connection
		case FromClient:
			got := make([]byte, len(data))
			_ = conn.SetReadDeadline(time.Now().Add(s.readTimeout))
			n, err := io.ReadFull(conn, got)
			s.mu.Lock()
			s.received = append(s.received, got[:n]...)
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("replay: %s:%d: want client bytes %q, got %q: %w", s.tr.Name, rec.Line, data, got[:n], err)
			}
			if !bytes.Equal(got, data) {
				return fmt.Errorf("replay: %s:%d: client sent %q, recording has %q", s.tr.Name, rec.Line, got, data)
			}
			base, baseAt = time.Now(), rec.At
		case FromRenode:
			if err := s.write(ctx, conn, rec, data, base, baseAt); err != nil {
				return err
			}
			base, baseAt = time.Now(), rec.Until
		}
	}
	// The transcript ended without EOF: keep the connection until the
	// client leaves or the server is closed, as Renode would.
	_ = conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 256)
	for {
		n, err := conn.Read(buf)
		s.mu.Lock()
		s.received = append(s.received, buf[:n]...)
		s.mu.Unlock()
		if err != nil {
			return nil
		}
	}
}

// write sends one Renode record in rec.Chunks pieces spread over the
// recorded span [At, Until]; the boundaries inside a record were not
// recorded, so the pieces are of equal size.
func (s *MonitorServer) write(ctx context.Context, conn net.Conn, rec Record, data []byte, base time.Time, baseAt time.Duration) error {
	chunks := max(1, min(rec.Chunks, len(data)))
	span := rec.Until - rec.At
	for i := 0; i < chunks; i++ {
		lo, hi := i*len(data)/chunks, (i+1)*len(data)/chunks
		at := rec.At + span*time.Duration(i)/time.Duration(chunks)
		if err := pace(ctx, time.Until(base.Add(at-baseAt))); err != nil {
			return err
		}
		if _, err := conn.Write(data[lo:hi]); err != nil {
			return fmt.Errorf("replay: %s:%d: write: %w", s.tr.Name, rec.Line, err)
		}
	}
	return nil
}

// pace waits d (the recorded gap) unless ctx ends first.
func pace(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errors.New("replay: stopped")
	}
}
