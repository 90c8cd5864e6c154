package broker

import (
	"fmt"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Fault names written to Event.Fault.
const (
	FaultDelay          = "delay"           // response held back by DelayResponses
	FaultDrop           = "drop"            // response not sent (DropResponses, duplicate drop)
	FaultRejectAll      = "reject-all"      // verdict forced by RejectAll
	FaultDropConnection = "drop-connection" // connection ended by DropConnectionAfter
	FaultKick           = "kick"            // connection ended by Kick
	FaultUndelivered    = "undelivered"     // response still queued when the broker closed
)

// faults is the run-time fault injection state; every method is safe for
// concurrent use with the client goroutines that consult it.
type faults struct {
	mu         sync.Mutex
	delay      time.Duration
	dropAll    bool
	dropNext   int
	rejectCode string
	dropAfter  int
}

// DelayResponses holds every later response back by d before sending it
// (0 turns the delay off). Responses keep their order.
func (b *Broker) DelayResponses(d time.Duration) {
	b.faults.mu.Lock()
	defer b.faults.mu.Unlock()
	if d < 0 {
		d = 0
	}
	b.faults.delay = d
}

// DropResponses stops (on) or resumes (off) sending responses; the reports
// are still judged and logged, with a response event marked "drop".
func (b *Broker) DropResponses(on bool) {
	b.faults.mu.Lock()
	defer b.faults.mu.Unlock()
	b.faults.dropAll = on
	if !on {
		b.faults.dropNext = 0
	}
}

// DropNextResponses drops the next n responses, then resumes.
func (b *Broker) DropNextResponses(n int) {
	b.faults.mu.Lock()
	defer b.faults.mu.Unlock()
	if n < 0 {
		n = 0
	}
	b.faults.dropNext = n
}

// RejectAll rejects every later report with the given ErrorCode (e.g.
// "InvalidPayload", "Throttled" or any string); "" turns it off.
func (b *Broker) RejectAll(code string) {
	b.faults.mu.Lock()
	defer b.faults.mu.Unlock()
	b.faults.rejectCode = code
}

// DropConnectionAfter makes the broker close a connection right after it
// carried its n-th report (counted per connection, before that report's
// response is sent); every later connection is treated alike. 0 turns it off.
func (b *Broker) DropConnectionAfter(n int) {
	b.faults.mu.Lock()
	defer b.faults.mu.Unlock()
	if n < 0 {
		n = 0
	}
	b.faults.dropAfter = n
}

// Kick closes the connection of the client with this ID now, as AWS does
// for an API-initiated disconnect (MQTT 5 clients get DISCONNECT 0x98 first).
func (b *Broker) Kick(clientID string) error {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return fmt.Errorf("broker: kick: no connected client %q", clientID)
	}
	c := connOf(cl)
	if c == nil {
		return fmt.Errorf("broker: kick: client %q has no network connection", clientID)
	}
	c.setEnd(ReasonAPIDisconnect, "kicked by the harness", FaultKick)
	b.disconnect(cl, packets.ErrAdministrativeAction)
	return nil
}

// responseFault decides, for one response about to be queued, whether it is
// dropped and how long it is delayed.
func (f *faults) responseFault() (drop bool, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropAll {
		return true, 0
	}
	if f.dropNext > 0 {
		f.dropNext--
		return true, 0
	}
	return false, f.delay
}

func (f *faults) rejectAll() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejectCode
}

func (f *faults) dropConnectionAfter() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropAfter
}
