package broker

import (
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ddhil/ddhil/broker/defender"
)

// service is Device Defender's per-thing state: when the last accepted
// report arrived (throttle) and the highest accepted report_id (duplicates).
type service struct {
	mu           sync.Mutex
	lastAccepted map[string]time.Time
	highest      map[string]uint64
}

func (s *service) init() {
	s.lastAccepted = map[string]time.Time{}
	s.highest = map[string]uint64{}
}

// judge applies the duplicate and throttle rules to a report that passed
// validation. Only accepted reports start a throttle window and raise the
// highest report_id; rejected and dropped ones change nothing.
func (s *service) judge(res defender.Result, thing string, now time.Time, cfg *Config) (out defender.Result, drop bool, note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hi, seen := s.highest[thing]
	if seen && res.HeaderParsed && res.ReportID <= hi {
		note = fmt.Sprintf("duplicate report_id %d: not above %d, the highest accepted for %s", res.ReportID, hi, thing)
		switch cfg.DuplicateIDs {
		case DuplicatesReject:
			res.Problem = &defender.Problem{Code: defender.CodeInvalidPayload, Message: defender.MsgMalformed,
				Path: "/header/report_id", Reason: note, Category: defender.CategoryHeader}
			return res, false, note
		case DuplicatesDrop:
			return res, true, note + "; dropped without response"
		}
	}
	if cfg.Throttle > 0 {
		if last, ok := s.lastAccepted[thing]; ok && now.Sub(last) < cfg.Throttle {
			res.Problem = &defender.Problem{Code: defender.CodeThrottled, Message: defender.MsgThrottled,
				Reason: fmt.Sprintf("%s after the last accepted report of %s; the window is %s", now.Sub(last).Round(time.Millisecond), thing, cfg.Throttle)}
			return res, false, note
		}
	}
	s.lastAccepted[thing] = now
	if !seen || res.ReportID > hi {
		s.highest[thing] = res.ReportID
	}
	return res, false, note
}

// messageFor is the ErrorMessage AWS sends with a code (or the code itself
// for codes AWS never documented).
func messageFor(code string) string {
	switch code {
	case defender.CodeInvalidPayload:
		return defender.MsgMalformed
	case defender.CodeThrottled:
		return defender.MsgThrottled
	default:
		return code
	}
}

// responseJob is a response waiting for its send time.
type responseJob struct {
	ev     Event // EventResponse with identity, topic and Response filled in
	format defender.Format
	delay  time.Duration
	due    time.Time
}

// judgeReport judges one Defender report on the client goroutine (cheap:
// decoding and validation only) before mochi acknowledges it, so a PUBACK
// implies the report and its meter snapshot are logged. It returns the
// response to queue once the PUBACK is out, or nil when none is sent.
func (b *Broker) judgeReport(c *conn, pk packets.Packet, kind defender.TopicKind, thing string) *responseJob {
	f := kind.Format()
	res := defender.Validate(f, pk.Payload, defender.Options{Lenient: b.cfg.Lenient})
	var note, fault string
	drop := false
	if code := b.faults.rejectAll(); code != "" {
		res.Problem = &defender.Problem{Code: code, Message: messageFor(code), Reason: "injected fault: reject-all"}
		fault = FaultRejectAll
	} else if res.Accepted() {
		res, drop, note = b.svc.judge(res, thing, b.cfg.clock(), &b.cfg)
	}
	c.reports++

	ev := c.event(EventReport)
	ev.Topic, ev.QoS, ev.Retain = pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain
	ev.Payload = pk.Payload // mochi's own buffer for this packet, never reused
	ev.Thing, ev.Format, ev.Result = thing, f, &res
	ev.Reason, ev.Fault = note, fault
	b.rec.Record(ev)
	m := c.m.snapshot()
	mev := c.event(EventMeter)
	mev.Meter = &m
	b.rec.Record(mev)

	resp := defender.Response{ThingName: thing, Status: defender.StatusAccepted}
	if !res.Accepted() {
		resp.Status = defender.StatusRejected
		resp.StatusDetails = &defender.StatusDetails{ErrorCode: res.Problem.Code, ErrorMessage: res.Problem.Message}
	}
	omit := b.cfg.OmitReportIDOnInvalid && !res.Accepted() && res.Problem.Code == defender.CodeInvalidPayload
	if res.HeaderParsed && !omit {
		id := res.ReportID
		resp.ReportID = &id
	}
	rev := c.event(EventResponse)
	rev.Thing, rev.Format = thing, f
	rev.Topic = defender.ResponseTopic(thing, f, res.Accepted())
	rev.Response = &resp

	switch dropFault, delay := b.faults.responseFault(); {
	case drop:
		resp.Timestamp = b.cfg.clock().UnixMilli()
		rev.Fault, rev.Reason = FaultDrop, note
		b.rec.Record(rev)
		return nil
	case dropFault:
		resp.Timestamp = b.cfg.clock().UnixMilli()
		rev.Fault = FaultDrop
		b.rec.Record(rev)
		return nil
	default:
		if delay > 0 {
			rev.Fault = FaultDelay
			rev.Reason = "delayed by " + delay.String()
		}
		return &responseJob{ev: rev, format: f, delay: delay}
	}
}

// afterReport runs once mochi has acknowledged and routed the report:
// it queues the response (which therefore never overtakes the PUBACK) and
// applies DropConnectionAfter.
func (b *Broker) afterReport(cl *mqtt.Client, c *conn, job *responseJob) {
	if job != nil {
		job.due = time.Now().Add(job.delay)
		b.responses.push(*job)
	}
	if n := b.faults.dropConnectionAfter(); n > 0 && c.reports >= n {
		c.setEnd(ReasonServerDisconnect, fmt.Sprintf("dropped after report %d (fault injection)", c.reports), FaultDropConnection)
		cl.Stop(packets.ErrAdministrativeAction) // the link just drops: no DISCONNECT, even on MQTT 5
	}
}

// responseWorker sends queued responses in order, each at its due time.
func (b *Broker) responseWorker() {
	defer b.bgWG.Done()
	for {
		job, ok := b.responses.pop(b.stop)
		if !ok {
			return
		}
		if wait := time.Until(job.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-b.stop:
				t.Stop()
			}
		}
		select {
		case <-b.stop:
			b.undelivered(job)
			for {
				j, ok := b.responses.tryPop()
				if !ok {
					return
				}
				b.undelivered(j)
			}
		default:
		}
		b.sendResponse(job)
	}
}

func (b *Broker) sendResponse(job responseJob) {
	ev := job.ev
	resp := *ev.Response
	resp.Timestamp = b.cfg.clock().UnixMilli()
	ev.Response = &resp
	payload, err := defender.EncodeResponse(job.format, resp)
	if err != nil {
		ev.Error = "encode response: " + err.Error()
		b.rec.Record(ev)
		return
	}
	ev.Payload, ev.QoS = payload, 1
	if err := b.srv.Publish(ev.Topic, payload, false, 1); err != nil {
		ev.Error = "publish response: " + err.Error()
	}
	b.rec.Record(ev)
}

func (b *Broker) undelivered(job responseJob) {
	ev := job.ev
	ev.Fault = FaultUndelivered
	ev.Reason = "broker closed before the response was due"
	b.rec.Record(ev)
}
