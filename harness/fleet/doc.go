// Package fleet simulates a fleet of AWS IoT Device Defender agents in
// process: N devices drawn from a profile of normal behaviour (report
// period, metric levels and jitter, JSON or CBOR, long or short keys)
// connect to an MQTT broker as a storm and report until the run ends,
// timing every publish → accepted round trip.
//
// Against the ddhil broker with a record file, the fleet's events.jsonl is
// the baseline that statisticalThreshold behaviours are computed from.
// Against another broker (mosquitto plus a validating responder, package
// fleet/mosquitto) the same fleet is a benchmark. Each agent is one
// goroutine over a hand-written MQTT 3.1.1 codec, so ten thousand fit in
// a few tens of MB. docs/fleet.md describes the profile and the figures.
package fleet
