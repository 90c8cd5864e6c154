// Package audit runs AWS IoT Device Defender Audit's device-facing checks
// on what the broker saw in a run: the client certificates of mutual-TLS
// connections (key quality, expiry, age, sharing, revocation), client-ID
// takeovers, and an IoT policy document the user passes. Check names,
// severities, reason codes and the finding shape are AWS's (research note
// detect-audit.md §5, cited "note §5.n").
package audit

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// Check names (the API names, note §5.2) and their severities.
const (
	KeyQuality         = "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK"
	Expiring           = "DEVICE_CERTIFICATE_EXPIRING_CHECK"
	Age                = "DEVICE_CERTIFICATE_AGE_CHECK"
	Shared             = "DEVICE_CERTIFICATE_SHARED_CHECK"
	ConflictingClients = "CONFLICTING_CLIENT_IDS_CHECK"
	RevokedStillActive = "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK"
	PolicyPermissive   = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK"
)

// Severity of each check (note §5.2).
var Severity = map[string]string{
	KeyQuality: "CRITICAL", Expiring: "MEDIUM", Age: "LOW", Shared: "CRITICAL",
	ConflictingClients: "HIGH", RevokedStillActive: "MEDIUM", PolicyPermissive: "CRITICAL",
}

// aliases are the names the suppression and mitigation pages use; they are
// accepted on input and never emitted (note §5.1).
var aliases = map[string]string{
	"DEVICE_CERT_APPROACHING_EXPIRATION_CHECK": Expiring,
	"REVOKED_DEVICE_CERT_CHECK":                RevokedStillActive,
}

// CanonicalName maps an alias to the API check name.
func CanonicalName(name string) string {
	if c, ok := aliases[strings.ToUpper(name)]; ok {
		return c
	}
	return strings.ToUpper(name)
}

// Resource is AWS's NonCompliantResource / RelatedResource.
type Resource struct {
	ResourceType       string            `json:"resourceType"`
	ResourceIdentifier map[string]any    `json:"resourceIdentifier"`
	AdditionalInfo     map[string]string `json:"additionalInfo,omitempty"`
}

// Finding is AWS's AuditFinding, plus At: the broker-clock offset of the
// evidence (for the timeline).
type Finding struct {
	FindingID                  string        `json:"findingId"`
	CheckName                  string        `json:"checkName"`
	Severity                   string        `json:"severity"`
	FindingTime                time.Time     `json:"findingTime"`
	NonCompliantResource       Resource      `json:"nonCompliantResource"`
	RelatedResources           []Resource    `json:"relatedResources,omitempty"`
	ReasonForNonCompliance     string        `json:"reasonForNonCompliance"`
	ReasonForNonComplianceCode string        `json:"reasonForNonComplianceCode"`
	IsSuppressed               bool          `json:"isSuppressed"`
	At                         time.Duration `json:"at"`
}

// Config tunes the checks; the zero value uses AWS's defaults.
type Config struct {
	// Now is the audit time; zero means the wall time of the last event.
	Now time.Time
	// ExpirationDays (default 30) and AgeDays (default 365) are
	// CERT_EXPIRATION_THRESHOLD_IN_DAYS and CERT_AGE_THRESHOLD_IN_DAYS,
	// each 30..3652 (note §5.1).
	ExpirationDays int
	AgeDays        int
	// Revoked holds revoked certificates: from a CRL (issuer and serial) or
	// a plain list (serial or certificate SHA-256).
	Revoked *Revoked
	// WeakKeys are Debian-weak RSA fingerprints (CVE-2008-0166), in the
	// openssl-blacklist form (see DebianFingerprint).
	WeakKeys map[string]bool
	// Policies are IoT policy documents to judge.
	Policies []*Policy
	// Checks limits the checks run (API names or aliases); empty runs all.
	Checks []string
}

func (c Config) withDefaults(events []broker.Event) (Config, error) {
	if c.ExpirationDays == 0 {
		c.ExpirationDays = 30
	}
	if c.AgeDays == 0 {
		c.AgeDays = 365
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"CERT_EXPIRATION_THRESHOLD_IN_DAYS", c.ExpirationDays}, {"CERT_AGE_THRESHOLD_IN_DAYS", c.AgeDays}} {
		if d.v < 30 || d.v > 3652 {
			return c, fmt.Errorf("audit: %s %d should be 30..3652", d.name, d.v)
		}
	}
	if c.Now.IsZero() {
		for _, ev := range events {
			if ev.Time.After(c.Now) {
				c.Now = ev.Time
			}
		}
	}
	for _, n := range c.Checks {
		if _, ok := Severity[CanonicalName(n)]; !ok {
			return c, fmt.Errorf("audit: unknown check %q", n)
		}
	}
	return c, nil
}

func (c Config) enabled(check string) bool {
	if len(c.Checks) == 0 {
		return true
	}
	for _, n := range c.Checks {
		if CanonicalName(n) == check {
			return true
		}
	}
	return false
}

// certConn is one mutual-TLS connection and the certificate it presented.
type certConn struct {
	connID, clientID string
	start, end       time.Duration
	startWall        time.Time
	endWall          time.Time // zero while open
	cert             *x509.Certificate
	id               string // SHA-256 of the DER: the certificate ID
}

// Run audits a recording and returns the findings, most severe first.
func Run(events []broker.Event, cfg Config) ([]Finding, error) {
	cfg, err := cfg.withDefaults(events)
	if err != nil {
		return nil, err
	}
	conns, certs := connections(events)
	var out []Finding
	add := func(f Finding) {
		f.Severity = Severity[f.CheckName]
		f.FindingTime = cfg.Now
		if f.ResourceKey() == "" {
			return
		}
		sum := sha256.Sum256([]byte(f.CheckName + "\x00" + f.ResourceKey() + "\x00" + f.ReasonForNonComplianceCode))
		f.FindingID = hex.EncodeToString(sum[:16])
		out = append(out, f)
	}
	ids := make([]string, 0, len(certs))
	for id := range certs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		first := certs[id][0]
		c := first.cert
		res := certResource(id)
		if cfg.enabled(KeyQuality) {
			for _, code := range weakKey(c, cfg.WeakKeys) {
				add(Finding{CheckName: KeyQuality, NonCompliantResource: res, At: first.start, ReasonForNonComplianceCode: code,
					ReasonForNonCompliance: "Certificate key is vulnerable to " + strings.TrimPrefix(code, "CERTIFICATE_KEY_VULNERABILITY_") + "."})
			}
		}
		if cfg.enabled(Expiring) {
			left := c.NotAfter.Sub(cfg.Now)
			info := map[string]string{"EXPIRATION_TIME": strconv.FormatInt(c.NotAfter.UnixMilli(), 10)}
			r := res
			r.AdditionalInfo = info
			switch {
			case left <= 0:
				add(Finding{CheckName: Expiring, NonCompliantResource: r, At: first.start, ReasonForNonComplianceCode: "CERTIFICATE_PAST_EXPIRATION",
					ReasonForNonCompliance: "Certificate is past its expiration."})
			case left <= time.Duration(cfg.ExpirationDays)*24*time.Hour:
				add(Finding{CheckName: Expiring, NonCompliantResource: r, At: first.start, ReasonForNonComplianceCode: "CERTIFICATE_APPROACHING_EXPIRATION",
					ReasonForNonCompliance: "Certificate is approaching expiration."})
			}
		}
		if cfg.enabled(Age) && cfg.Now.Sub(c.NotBefore) >= time.Duration(cfg.AgeDays)*24*time.Hour {
			// No IoT registry here: the age counts from notBefore (note §5.2).
			add(Finding{CheckName: Age, NonCompliantResource: res, At: first.start, ReasonForNonComplianceCode: "CERTIFICATE_PAST_AGE_THRESHOLD",
				ReasonForNonCompliance: fmt.Sprintf("Certificate has been active for %d days or more (since notBefore %s).", cfg.AgeDays, c.NotBefore.UTC().Format(time.RFC3339))})
		}
		if cfg.enabled(RevokedStillActive) && cfg.Revoked.Has(c, id) {
			add(Finding{CheckName: RevokedStillActive, NonCompliantResource: res, At: first.start, ReasonForNonComplianceCode: "CERTIFICATE_REVOKED_BY_ISSUER",
				ReasonForNonCompliance: "Certificate was revoked by its issuer but was still used to connect."})
		}
		if cfg.enabled(Shared) {
			if f, ok := sharedFinding(certs[id], res); ok {
				add(f)
			}
		}
	}
	if cfg.enabled(ConflictingClients) {
		conflicting(events, conns, add)
	}
	if cfg.enabled(PolicyPermissive) {
		for _, p := range cfg.Policies {
			if f, ok := p.Judge(); ok {
				add(f)
			}
		}
	}
	rank := map[string]int{"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Severity] != rank[out[j].Severity] {
			return rank[out[i].Severity] < rank[out[j].Severity]
		}
		return out[i].CheckName < out[j].CheckName
	})
	return out, nil
}

// ResourceKey identifies the finding's resource, for ids.
func (f Finding) ResourceKey() string {
	for _, k := range []string{"deviceCertificateId", "clientId"} {
		if v, ok := f.NonCompliantResource.ResourceIdentifier[k].(string); ok {
			return v
		}
	}
	if v, ok := f.NonCompliantResource.ResourceIdentifier["policyVersionIdentifier"].(map[string]string); ok {
		return v["policyName"] + "/" + v["policyVersionId"]
	}
	return ""
}

func certResource(id string) Resource {
	return Resource{ResourceType: "DEVICE_CERTIFICATE", ResourceIdentifier: map[string]any{"deviceCertificateId": id}}
}

// connections pairs connect and disconnect events; certs groups the TLS
// connections by certificate ID, in connect order.
func connections(events []broker.Event) (map[string]*certConn, map[string][]*certConn) {
	conns := map[string]*certConn{}
	certs := map[string][]*certConn{}
	for _, ev := range events {
		switch ev.Kind {
		case broker.EventConnect:
			if ev.Error != "" {
				continue
			}
			c := &certConn{connID: ev.ConnID, clientID: ev.ClientID, start: ev.Mono, end: -1, startWall: ev.Time}
			if ev.TLS != nil && len(ev.TLS.PeerCert) > 0 {
				if cert, err := x509.ParseCertificate(ev.TLS.PeerCert); err == nil {
					sum := sha256.Sum256(cert.Raw)
					c.cert, c.id = cert, hex.EncodeToString(sum[:])
					certs[c.id] = append(certs[c.id], c)
				}
			}
			conns[ev.ConnID] = c
		case broker.EventDisconnect:
			if c, ok := conns[ev.ConnID]; ok && c.end < 0 {
				c.end, c.endWall = ev.Mono, ev.Time
			}
		}
	}
	return conns, certs
}

// weakKey returns the reason codes of the two CVEs the key-quality check
// tests (note §5.2): ROCA and the Debian PRNG.
func weakKey(c *x509.Certificate, debian map[string]bool) []string {
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil
	}
	var out []string
	if IsROCA(k) {
		out = append(out, "CERTIFICATE_KEY_VULNERABILITY_CVE-2017-15361")
	}
	if debian[DebianFingerprint(k)] {
		out = append(out, "CERTIFICATE_KEY_VULNERABILITY_CVE-2008-0166")
	}
	return out
}

// sharedFinding flags a certificate used by overlapping connections (the
// strict reading of note §5.2); the related resources are the client IDs
// with their connection times, most recent first.
func sharedFinding(cs []*certConn, res Resource) (Finding, bool) {
	overlap := false
	for i := range cs {
		for j := i + 1; j < len(cs); j++ {
			a, b := cs[i], cs[j]
			aEnd, bEnd := a.end, b.end
			if aEnd < 0 {
				aEnd = 1<<63 - 1
			}
			if bEnd < 0 {
				bEnd = 1<<63 - 1
			}
			if a.start < bEnd && b.start < aEnd {
				overlap = true
			}
		}
	}
	if !overlap {
		return Finding{}, false
	}
	f := Finding{CheckName: Shared, NonCompliantResource: res, At: cs[1].start, ReasonForNonComplianceCode: "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES",
		ReasonForNonCompliance: "Certificate shared by one or more devices."}
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		info := map[string]string{"CONNECTION_TIME": strconv.FormatInt(c.startWall.UnixMilli(), 10)}
		if !c.endWall.IsZero() {
			info["DISCONNECTION_TIME"] = strconv.FormatInt(c.endWall.UnixMilli(), 10)
		}
		f.RelatedResources = append(f.RelatedResources, Resource{ResourceType: "CLIENT_ID",
			ResourceIdentifier: map[string]any{"clientId": c.clientID}, AdditionalInfo: info})
	}
	return f, true
}

// conflicting flags client IDs whose connection was knocked off by a newer
// one with the same ID (DUPLICATE_CLIENTID, note §5.2); the related
// resources are the certificates (or connections) displaced, most recent
// first.
func conflicting(events []broker.Event, conns map[string]*certConn, add func(Finding)) {
	byClient := map[string][]Resource{}
	at := map[string]time.Duration{}
	var order []string
	for _, ev := range events {
		if ev.Kind != broker.EventDisconnect || ev.Reason != broker.ReasonDuplicateClient {
			continue
		}
		c := conns[ev.ConnID]
		client := ev.ClientID
		if client == "" && c != nil {
			client = c.clientID
		}
		r := Resource{ResourceType: "DEVICE_CERTIFICATE", ResourceIdentifier: map[string]any{},
			AdditionalInfo: map[string]string{"DISCONNECTION_TIME": strconv.FormatInt(ev.Time.UnixMilli(), 10), "CONNECTION_ID": ev.ConnID}}
		if c != nil && c.id != "" {
			r.ResourceIdentifier["deviceCertificateId"] = c.id
		} else {
			r.ResourceType = "CLIENT_ID"
			r.ResourceIdentifier["clientId"] = client
		}
		if _, seen := byClient[client]; !seen {
			order = append(order, client)
		}
		byClient[client] = append([]Resource{r}, byClient[client]...)
		at[client] = ev.Mono
	}
	for _, client := range order {
		add(Finding{CheckName: ConflictingClients, At: at[client],
			NonCompliantResource: Resource{ResourceType: "CLIENT_ID", ResourceIdentifier: map[string]any{"clientId": client}},
			RelatedResources:     byClient[client], ReasonForNonComplianceCode: "DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS",
			ReasonForNonCompliance: fmt.Sprintf("Client ID %q was used by %d connection(s) that took over an existing one.", client, len(byClient[client]))})
	}
}
