// Package report is the result of one conformance run and every way of
// writing it down: report.json (the versioned machine format that `ddhil
// report` reads back), junit.xml for CI test reporters, report.md for a job
// summary and a self-contained report.html with an SVG timeline. The run and
// the check catalogue fill in a Report; the writers only render it, so every
// output tells the same story.
package report

import (
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/hostload"
	"github.com/ddhil/ddhil/harness/judge/verdict"
	"github.com/ddhil/ddhil/harness/target"
)

// SchemaVersion names the JSON layout. Fields may be added within a version
// (readers ignore what they do not know); renaming, removing or changing the
// meaning of a field, a status or the verdict rule needs a new version.
const SchemaVersion = "ddhil.report/v1"

// Outcome is the verdict of a whole run.
type Outcome string

const (
	Pass  Outcome = "pass"  // every fail-severity check passed
	Fail  Outcome = "fail"  // the firmware is wrong
	Error Outcome = "error" // the lab is wrong, or the run could not judge
)

// The check vocabulary is package verdict's (shared with the check
// catalogue, the CLI and hiltest); these names re-export it so a reader of
// report.json needs one import. They are the same types, not copies.
type (
	Severity = verdict.Severity
	Status   = verdict.Status
	Category = verdict.Category
)

const (
	SeverityFail = verdict.SeverityFail
	SeverityWarn = verdict.SeverityWarn

	StatusPass  = verdict.StatusPass
	StatusFail  = verdict.StatusFail  // findings on a fail-severity check
	StatusWarn  = verdict.StatusWarn  // findings on a warn-severity check
	StatusError = verdict.StatusError // the check could not run because the lab failed
	StatusSkip  = verdict.StatusSkip  // not applicable to this target or profile
)

// MarkKind names a timeline entry.
type MarkKind string

const (
	MarkConnect    MarkKind = "connect"    // MQTT connection accepted (or refused: Status "refused")
	MarkSubscribe  MarkKind = "subscribe"  // one per filter
	MarkReport     MarkKind = "report"     // a Defender report arrived; Status accepted|rejected
	MarkResponse   MarkKind = "response"   // the service answered; Status accepted|rejected|dropped|delayed
	MarkDisconnect MarkKind = "disconnect" // the connection ended; Label says why
	MarkReset      MarkKind = "reset"      // the harness reset the target
	MarkFault      MarkKind = "fault"      // the harness injected a fault
	MarkPhase      MarkKind = "phase"      // the run entered a named phase
)

// Mark statuses with a colour of their own in the timeline.
const (
	MarkAccepted = "accepted"
	MarkRejected = "rejected"
)

// Answers a report can get besides accepted and rejected (Received.Answer,
// and the Status of a response mark).
const (
	// AnswerDropped: the run injected a fault that withheld the answer.
	AnswerDropped = "dropped"
	// AnswerUnsent: no answer was sent because the run ended (or the
	// connection closed) before it was due; not a fault, not a drop.
	AnswerUnsent = "unsent"
)

// Report is everything one run established. Offsets (the *NS fields of type
// time.Duration) count nanoseconds from Run.Started on the run's clock.
type Report struct {
	Schema   string      `json:"schema"`
	Run      Run         `json:"run"`
	Target   target.Info `json:"target"`
	Firmware Firmware    `json:"firmware"`
	Profile  Profile     `json:"profile"`

	// Outcome, OutcomeReason and Counts are what Verdict, VerdictReason and
	// the checks gave when the report was written; the writers compute them,
	// so a caller need not set them, and ReadJSON rejects a file where they
	// disagree with the checks.
	Outcome       Outcome `json:"verdict"`
	OutcomeReason string  `json:"verdict_reason"`
	Counts        Counts  `json:"counts"`

	Checks    []Check    `json:"checks"`
	Schedule  *Schedule  `json:"schedule,omitempty"`
	Timeline  []Mark     `json:"timeline"`
	Reports   []Received `json:"reports"`
	Artefacts []Artefact `json:"artefacts"`
	// ATExchange is the AT dialogue with the emulated Wi-Fi module (module
	// transport only; the first and last MaxATExchange/2 commands of a long
	// run): what a reviewer needs when a device never reached MQTT.
	ATExchange []ATCommand `json:"at_exchange,omitempty"`
	// Detect is present when the run evaluated security profiles, Audit
	// when it ran the Audit checks (detect.go).
	Detect *Detect `json:"detect,omitempty"`
	Audit  *Audit  `json:"audit,omitempty"`
}

// MaxATExchange bounds the commands a report keeps (link.jsonl has all).
const MaxATExchange = 400

// ATCommand is one command the firmware sent the module and its answer.
type ATCommand struct {
	At      time.Duration `json:"at_ns"`
	Command string        `json:"command"`
	Result  string        `json:"result,omitempty"` // OK, ERROR, SEND OK, ...
	Answer  string        `json:"answer,omitempty"` // every byte of the reply
	Reason  string        `json:"reason,omitempty"` // why the module refused it
}

// Refused reports whether the module answered the command with an error.
func (c ATCommand) Refused() bool {
	return c.Reason != "" || strings.Contains(c.Result, "ERROR") || strings.Contains(c.Result, "FAIL")
}

// Run is metadata about the run itself.
type Run struct {
	Tool        string        `json:"tool"`         // "ddhil"
	ToolVersion string        `json:"tool_version"` // e.g. "v0.3.0" or a VCS revision
	Started     time.Time     `json:"started"`
	Finished    time.Time     `json:"finished"`
	Duration    time.Duration `json:"duration_ns"`
	// Clock is "wall" or "virtual" (Renode's virtual time); offsets use it.
	Clock string `json:"clock,omitempty"`
	// TargetClock names the target's own clock the timing checks judged on
	// ("renode-virtual", "guest-ticks:ticks_lo"); empty: host time (a board,
	// or a target without one). Marks then carry both clocks.
	TargetClock string `json:"target_clock,omitempty"`
	// HostLoad is what the host was doing: CPUs, load, steal, stalls.
	HostLoad *hostload.Record `json:"host_load,omitempty"`
	Host     string           `json:"host"`
	Command  []string         `json:"command"`
	// Incomplete marks a run that stopped before every check could judge
	// (Ctrl-C, a deadline, a lab failure); IncompleteReason says why.
	Incomplete       bool   `json:"incomplete"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`
	// LabError is the lab failure that stopped or spoilt the run (flash
	// failed, port vanished, emulator missing); non-empty means verdict error.
	LabError string `json:"lab_error,omitempty"`
	// Stopped says where a run whose device never reached the broker got
	// stuck, from the emulated module's log ("module refused AT+CWDHCP=1,1
	// at 1.8 s (unsupported); Wi-Fi never joined").
	Stopped string `json:"stopped,omitempty"`
}

// Firmware identifies the image under test.
type Firmware struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // lower-case hex
	Size   int64  `json:"size"`   // bytes
}

// Profile is the device profile the run judged against.
type Profile struct {
	Name   string       `json:"name"`
	Path   string       `json:"path"`
	Expect Expectations `json:"expect"`
}

// Expectations are the profile values the checks used; zero means "not set".
type Expectations struct {
	Thing  string          `json:"thing,omitempty"`
	Format defender.Format `json:"format,omitempty"`
	Period time.Duration   `json:"period_ns,omitempty"`
	// Tolerance is the allowed deviation of the interval median, as a
	// fraction of Period (0.1 = ±10 %).
	Tolerance        float64       `json:"tolerance,omitempty"`
	JitterP95        time.Duration `json:"jitter_p95_ns,omitempty"`
	FirstReportBound time.Duration `json:"first_report_bound_ns,omitempty"`
	ReconnectBound   time.Duration `json:"reconnect_bound_ns,omitempty"`
	// PeriodScale > 1 means a test build that reports that many times faster
	// than production; the production-period rules do not apply.
	PeriodScale float64 `json:"period_scale,omitempty"`
	// Listening ports expected: null means the profile does not say, []
	// means none.
	ListeningTCPPorts []uint64          `json:"listening_tcp_ports"`
	ListeningUDPPorts []uint64          `json:"listening_udp_ports"`
	Extra             map[string]string `json:"extra,omitempty"`
}

// Counts summarise the checks and the reports received.
type Counts struct {
	Checks int `json:"checks"`
	Pass   int `json:"pass"`
	Fail   int `json:"fail"`
	Warn   int `json:"warn"`
	Error  int `json:"error"`
	Skip   int `json:"skip"`

	Reports  int `json:"reports"`
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
}

// Check is one catalogue check's result.
type Check struct {
	ID    string `json:"id"` // stable, e.g. "DD-S03"
	Title string `json:"title"`
	// Category is derived from the ID ("schema", "timing", ...) when empty.
	Category    Category `json:"category"`
	Severity    Severity `json:"severity"`
	Citation    string   `json:"citation,omitempty"`     // the spec clause, in words
	CitationURL string   `json:"citation_url,omitempty"` // where to read it
	Status      Status   `json:"status"`
	SkipReason  string   `json:"skip_reason,omitempty"` // required when Status is skip
	// Measured says in one line what the check looked at and found, pass
	// or fail: "4 intervals, median 1.002s (expected 1s ± 10%)".
	Measured string    `json:"measured,omitempty"`
	Error    string    `json:"error,omitempty"` // required when Status is error
	Findings []Finding `json:"findings"`
}

// Finding is one piece of evidence against the firmware. Only Message is
// required; the rest is filled in where the check knows it.
type Finding struct {
	Message  string         `json:"message"`
	ReportID *uint64        `json:"report_id,omitempty"`
	At       *time.Duration `json:"at_ns,omitempty"`    // when it was observed
	Path     string         `json:"path,omitempty"`     // JSON pointer into the payload
	Expected string         `json:"expected,omitempty"` // for humans: "10s ± 10%"
	Observed string         `json:"observed,omitempty"`
	// ExpectedValue/ObservedValue carry the same numbers for machines, in Unit.
	ExpectedValue *float64 `json:"expected_value,omitempty"`
	ObservedValue *float64 `json:"observed_value,omitempty"`
	Unit          string   `json:"unit,omitempty"` // "s", "bytes", "packets", ...
	// Window is the span of time the finding is about (an interval, a
	// metering window).
	Window  *Window `json:"window,omitempty"`
	Excerpt string  `json:"excerpt,omitempty"` // the offending part of the payload
	// Evidence holds anything else the check measured, by name. Values must
	// encode as JSON; numbers read back as json.Number so 64-bit values
	// survive.
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Window is a span of run time.
type Window struct {
	From time.Duration `json:"from_ns"`
	To   time.Duration `json:"to_ns"`
}

// Schedule is the cadence the timeline draws expected ticks for. Each connect
// mark starts a new schedule: the first report is due within
// FirstReportBound, then one every Period (± Tolerance·Period).
type Schedule struct {
	Period           time.Duration `json:"period_ns"`
	Tolerance        float64       `json:"tolerance,omitempty"`
	FirstReportBound time.Duration `json:"first_report_bound_ns,omitempty"`
}

// Mark is one entry of the run's timeline.
type Mark struct {
	At       time.Duration `json:"at_ns"`
	Kind     MarkKind      `json:"kind"`
	Label    string        `json:"label,omitempty"`
	ReportID *uint64       `json:"report_id,omitempty"`
	Status   string        `json:"status,omitempty"`
	ConnID   string        `json:"conn_id,omitempty"`
	// TargetAt is the same moment on the target's clock (Run.TargetClock).
	TargetAt *time.Duration `json:"target_at_ns,omitempty"`
}

// Received is one Defender report the broker received, with its verdict.
type Received struct {
	At       time.Duration   `json:"at_ns"`
	TargetAt *time.Duration  `json:"target_at_ns,omitempty"` // on Run.TargetClock
	ReportID *uint64         `json:"report_id,omitempty"`    // absent when the header did not parse
	ConnID   string          `json:"conn_id,omitempty"`
	Topic    string          `json:"topic"`
	Format   defender.Format `json:"format"`
	Size     int             `json:"size"` // payload bytes on the wire
	Accepted bool            `json:"accepted"`
	Code     string          `json:"code,omitempty"` // InvalidPayload | Throttled when rejected
	// Answer is what the harness sent back: accepted, rejected, dropped
	// (an injected fault withheld it) or unsent (the run ended before the
	// answer was sent).
	Answer  string             `json:"answer,omitempty"`
	Problem *defender.Problem  `json:"problem,omitempty"`
	Lint    []defender.Finding `json:"lint,omitempty"`
	Decoded *defender.Report   `json:"decoded,omitempty"` // nil when decoding failed
	// Payload is the raw payload (base64 in JSON), cut to at most
	// MaxPayloadKept bytes; PayloadTruncated says whether it was cut.
	Payload          []byte `json:"payload"`
	PayloadTruncated bool   `json:"payload_truncated,omitempty"`
}

// MaxPayloadKept bounds the raw bytes a report keeps per payload. AWS caps a
// payload at 128 KB, so this keeps every legal payload whole.
const MaxPayloadKept = 128 * 1024

// Artefact is a file the run left next to the report.
type Artefact struct {
	Name string `json:"name"` // path relative to the report's directory
	// Kind is console-log, events, screenshot, pcap or other.
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	Size        int64  `json:"size,omitempty"`
}

// Artefact kinds the writers know.
const (
	ArtefactConsoleLog = "console-log"
	ArtefactEvents     = "events"
	ArtefactScreenshot = "screenshot"
)

// New returns an empty report of the current schema.
func New() *Report { return &Report{Schema: SchemaVersion, Run: Run{Tool: "ddhil"}} }

// KeepPayload copies at most MaxPayloadKept bytes of p into the report's
// Payload and Size fields.
func (rc *Received) KeepPayload(p []byte) {
	rc.Size = len(p)
	n := min(len(p), MaxPayloadKept)
	rc.Payload = append([]byte(nil), p[:n]...)
	rc.PayloadTruncated = n < len(p)
}
