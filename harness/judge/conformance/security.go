package conformance

import (
	"fmt"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// checkTLS: mutual-TLS connections use TLS 1.2 or later, and the client
// certificate has a strong key and is valid at connection time.
func checkTLS(c *Capture) Outcome {
	var out Outcome
	n := 0
	var seen []string
	for _, ev := range c.Events {
		if ev.Kind != broker.EventConnect || ev.TLS == nil {
			continue
		}
		n++
		t := ev.TLS
		seen = append(seen, fmt.Sprintf("%s %s %d", t.Version, t.PeerKeyType, t.PeerKeyBits))
		ev0 := map[string]any{"client_id": ev.ClientID, "version": t.Version, "cipher_suite": t.CipherSuite,
			"key": fmt.Sprintf("%s %d", t.PeerKeyType, t.PeerKeyBits), "not_before": t.PeerNotBefore, "not_after": t.PeerNotAfter}
		if t.Version != "TLS 1.2" && t.Version != "TLS 1.3" {
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Evidence: ev0, Message: "TLS version " + t.Version + " is below 1.2"}.
				expecting("TLS 1.2 or 1.3", t.Version))
		}
		switch {
		case strings.HasPrefix(t.PeerKeyType, "RSA") && t.PeerKeyBits < 2048,
			strings.HasPrefix(t.PeerKeyType, "ECDSA") && t.PeerKeyBits < 256:
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Evidence: ev0,
				Message: fmt.Sprintf("client key %s %d bits is weaker than RSA 2048 / ECDSA P-256", t.PeerKeyType, t.PeerKeyBits)}.
				expecting("RSA ≥ 2048 or ECDSA ≥ 256 bits", fmt.Sprintf("%s %d bits", t.PeerKeyType, t.PeerKeyBits)))
		}
		if !t.PeerNotAfter.IsZero() && (ev.Time.After(t.PeerNotAfter) || ev.Time.Before(t.PeerNotBefore)) {
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Evidence: ev0,
				Message: fmt.Sprintf("client certificate not valid at connection time (valid %s to %s)", t.PeerNotBefore.Format(time.RFC3339), t.PeerNotAfter.Format(time.RFC3339))}.
				expecting("valid at "+ev.Time.UTC().Format(time.RFC3339), t.PeerNotBefore.Format(time.RFC3339)+" to "+t.PeerNotAfter.Format(time.RFC3339)))
		}
		if strings.Contains(strings.ToUpper(t.PeerSigAlg), "SHA1") || strings.Contains(strings.ToUpper(t.PeerSigAlg), "MD5") {
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Evidence: ev0, Message: "client certificate signed with " + t.PeerSigAlg}.
				expecting("a signature without SHA-1 or MD5", t.PeerSigAlg))
		}
	}
	if n == 0 {
		return skip("no mutual-TLS connection in this run (transport %s)", c.Expect.Transport)
	}
	out.Measured = fmt.Sprintf("%s: %s", plural(n, "mutual-TLS connection"), strings.Join(seen, ", "))
	return out
}

// checkOwnTopics: the device publishes and subscribes only under its own
// thing's topics (a '+' thing level in a subscription is tolerated, as the
// STM32U5 reference uses it). A policy refusal by the broker counts too.
func checkOwnTopics(c *Capture) Outcome {
	var out Outcome
	n := 0
	own := "$aws/things/" + c.Thing + "/…"
	for _, ev := range c.Events {
		switch ev.Kind {
		case broker.EventPolicy:
			if strings.Contains(ev.Reason, "policy") || strings.Contains(ev.Reason, "thing") {
				out.Findings = append(out.Findings, Finding{At: ev.Mono, Message: "broker policy refused: " + ev.Reason,
					Evidence: map[string]any{"topic": ev.Topic, "client_id": ev.ClientID}}.expecting("topics under "+own, ev.Topic))
			}
		case broker.EventPublish, broker.EventSubscribe:
			if !strings.HasPrefix(ev.Topic, "$aws/things/") {
				continue
			}
			n++
			thing := strings.SplitN(strings.TrimPrefix(ev.Topic, "$aws/things/"), "/", 2)[0]
			if thing == c.Thing || (ev.Kind == broker.EventSubscribe && thing == "+") {
				continue
			}
			out.Findings = append(out.Findings, Finding{At: ev.Mono,
				Message:  fmt.Sprintf("%s on another thing's topic %s (device is %q)", ev.Kind, ev.Topic, c.Thing),
				Evidence: map[string]any{"topic": ev.Topic, "client_id": ev.ClientID}}.expecting("topics under "+own, ev.Topic))
		}
	}
	if n == 0 && len(out.Findings) == 0 {
		return skip("the device used no $aws/things topic")
	}
	out.Measured = fmt.Sprintf("%d publishes and subscriptions on $aws/things/ topics, %d outside %s", n, len(out.Findings), own)
	return out
}
