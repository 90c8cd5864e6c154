package broker

import (
	"testing"

	"github.com/ddhil/ddhil/broker/defender"
)

// BenchmarkRoundTrip measures one Defender report from publish (QoS 1) to
// the accepted response received, over loopback TCP with a paho client.
// Run: go test -run '^$' -bench RoundTrip -benchtime 2000x ./broker/
func BenchmarkRoundTrip(b *testing.B) {
	br := startBroker(b, Config{Throttle: NoThrottle})
	c := connectPaho(b, pahoOpts(br, "bench"))
	acc := subscribePaho(b, c, topicOf("bench", defender.JSONAccepted), 1)
	topic := topicOf("bench", defender.JSONPublish)
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = reportJSON(uint64(i + 1))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Publish(topic, 1, false, payloads[i])
		receive(b, acc)
	}
}
