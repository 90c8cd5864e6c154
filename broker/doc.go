// Package broker is the embedded MQTT broker (mochi-mqtt v2) that plays AWS
// IoT Core with Device Defender towards a device under test.
//
// It answers Defender reports on their accepted/rejected topics in the
// report's own format, applies the service's throttle and AWS IoT Core's
// refusals (QoS 2, payloads over 128 KB, retained "$" publishes, publishes
// on response topics, and under the strict policy other things' topics) by
// closing the connection, and injects faults on demand (DelayResponses,
// DropResponses, RejectAll, DropConnectionAfter, Kick).
//
// It is also the harness's witness: every accepted connection — plain TCP,
// mutual TLS, or an in-memory net.Conn from the emulated Wi-Fi module — is
// metered below TLS (bytes) and on the MQTT stream (packets), and every
// connect, subscribe, publish, verdict, response, refusal and disconnect is
// recorded with a sequence number and a monotonic timestamp (Recorder).
// docs/broker.md describes the emulated behaviours and the event format.
package broker
