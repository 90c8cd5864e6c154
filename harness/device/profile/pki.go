package profile

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ddhil/ddhil/harness/link/console"
)

// PKIStep is one step of on-device key and certificate provisioning, of
// one of three kinds:
//
//   - a command: send + expect, like a provision step (`pki generate key`);
//   - capture: csr — send makes the device print a CERTIFICATE REQUEST PEM;
//     the harness's Signer turns it into the certificate "device_cert";
//   - import: device_cert | ca_cert — send starts an import, then the PEM
//     goes line by line, each line waiting for the CLI's prompt, and expect
//     must show before the prompt that ends the import (a CLI that prints
//     nothing on a bad PEM thus fails the step).
type PKIStep struct {
	Name    string `yaml:"name"`
	Send    string `yaml:"send"`    // placeholders replaced verbatim
	Expect  string `yaml:"expect"`  // regexp; placeholders replaced quoted
	Capture string `yaml:"capture"` // "csr"
	Import  string `yaml:"import"`  // "device_cert" | "ca_cert"
	// MaxLine is the longest PEM line the CLI takes (default 64); the PEM is
	// re-wrapped to it.
	MaxLine int      `yaml:"max_line"`
	Timeout Duration `yaml:"timeout"` // the whole step; default 30 s
}

// Names a PKIStep uses.
const (
	CaptureCSR    = "csr"
	PEMDeviceCert = "device_cert" // the certificate the Signer issued for the captured CSR
	PEMCACert     = "ca_cert"     // Signer.CACert: the root the device verifies the broker with
)

// DefaultPEMLine is the longest PEM line the STM32 reference CLI accepts.
const DefaultPEMLine = 64

// Signer is the lab CA the pki steps use (harness/device/provision.CA is one).
type Signer interface {
	// SignCSR issues a client certificate (PEM) for thing from a device's
	// certificate request (PEM).
	SignCSR(thing string, csrPEM []byte) ([]byte, error)
	// CACert is the CA certificate (PEM) that signed the broker's
	// certificate.
	CACert() []byte
}

// WithSigner returns a copy of the profile whose pki steps use s.
func (p *Profile) WithSigner(s Signer) *Profile {
	cp := *p
	cp.signer = s
	return &cp
}

// NeedsSigner reports whether the profile has pki steps.
func (p *Profile) NeedsSigner() bool { return len(p.PKISteps) > 0 }

func (p *Profile) checkPKI() []error {
	var errs []error
	captured := false
	for i, s := range p.PKISteps {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("pki step %d (%s): %s", i+1, s.Name, fmt.Sprintf(format, args...)))
		}
		if s.Send == "" {
			bad("send is required")
		}
		if s.Expect != "" {
			if _, err := regexp.Compile(placeholder.ReplaceAllString(s.Expect, "x")); err != nil {
				bad("expect: %v", err)
			}
		}
		if s.MaxLine != 0 && s.MaxLine < len("-----BEGIN CERTIFICATE-----") {
			bad("max_line %d is shorter than a PEM header", s.MaxLine)
		}
		switch {
		case s.Capture != "" && s.Import != "":
			bad("capture and import exclude each other")
		case s.Capture != "":
			if s.Capture != CaptureCSR {
				bad("capture %q: want %q", s.Capture, CaptureCSR)
			}
			if s.Expect != "" {
				bad("a capture step ends at the PEM's END line; expect is not used")
			}
			captured = true
		case s.Import != "":
			switch s.Import {
			case PEMCACert:
			case PEMDeviceCert:
				if !captured {
					bad("import %s needs an earlier capture: csr step", PEMDeviceCert)
				}
			default:
				bad("import %q: want %s or %s", s.Import, PEMDeviceCert, PEMCACert)
			}
			if s.Expect == "" {
				bad("an import step needs expect (the CLI's success line)")
			}
		case s.Expect == "":
			bad("send and expect are required")
		}
	}
	return errs
}

// runPKI runs the pki steps with vars already merged.
func (p *Profile) runPKI(ctx context.Context, c *console.Console, vars Vars) error {
	if len(p.PKISteps) == 0 {
		return nil
	}
	var deviceCert []byte
	for i, s := range p.PKISteps {
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		send, m1 := expand(s.Send, vars, false)
		expect, m2 := expand(s.Expect, vars, true)
		fail := func(err error, tail string) error {
			return &StepError{Profile: p.Name, Group: "pki", Step: name, Send: send, Err: err, Tail: tail}
		}
		if missing := append(m1, m2...); len(missing) > 0 {
			return fail(fmt.Errorf("no value for %s", strings.Join(dedupe(missing), ", ")), "  (not sent)\n")
		}
		if s.Capture == "" && s.Import == "" {
			if err := p.run(ctx, c, "pki", i, Step{Name: name, Send: s.Send, Expect: s.Expect, Timeout: s.Timeout}, vars); err != nil {
				return err
			}
			continue
		}
		if p.signer == nil {
			return fail(errors.New("no lab CA: the pki steps need a Signer (Profile.WithSigner)"), "  (not sent)\n")
		}
		re, err := regexp.Compile(expect)
		if err != nil {
			return fail(err, "  (not sent)\n")
		}
		timeout := time.Duration(s.Timeout)
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		err = func() error {
			defer cancel()
			if s.Capture == CaptureCSR {
				csr, err := p.capturePEM(sctx, c, send, "CERTIFICATE REQUEST")
				if err != nil {
					return err
				}
				cert, err := p.signer.SignCSR(vars["thing"], csr)
				if err != nil {
					return fmt.Errorf("signing the device's CSR: %w", err)
				}
				deviceCert = cert
				return nil
			}
			doc := p.signer.CACert()
			if s.Import == PEMDeviceCert {
				doc = deviceCert
			}
			maxLine := s.MaxLine
			if maxLine == 0 {
				maxLine = DefaultPEMLine
			}
			lines, err := wrapPEM(doc, maxLine)
			if err != nil {
				return err
			}
			return p.importPEM(sctx, c, send, lines, re)
		}()
		if err != nil {
			return fail(err, c.Tail(10))
		}
	}
	return nil
}

// exactLine matches a console line equal to it (surrounding blanks aside):
// the CLI's echo of what was sent.
type exactLine string

func (e exactLine) MatchString(s string) bool {
	return strings.TrimSpace(s) == strings.TrimSpace(string(e))
}
func (e exactLine) String() string { return "echo of " + string(e) }

// sendLine sends one line and waits for its echo and the prompt after it;
// it returns the non-log lines between the echo and now, and fails on a
// line matching the console's error pattern.
func (p *Profile) sendLine(ctx context.Context, c *console.Console, line string) ([]console.Line, error) {
	c.Skip(c.Mark())
	if err := c.Send(line); err != nil {
		return nil, err
	}
	echo, err := c.Expect(ctx, exactLine(line))
	if err != nil {
		return nil, err
	}
	if err := c.ExpectPrompt(ctx); err != nil {
		return nil, err
	}
	return p.outputAfter(c, echo.Seq, line)
}

// outputAfter lists the non-log lines after seq; a line matching the
// profile's error pattern is a *console.CommandError.
func (p *Profile) outputAfter(c *console.Console, seq uint64, sent string) ([]console.Line, error) {
	var errRe *regexp.Regexp
	if p.Console.ErrorPattern != "" {
		errRe = regexp.MustCompile(p.Console.ErrorPattern)
	}
	var out []console.Line
	for _, l := range c.Lines() {
		if l.Seq <= seq || l.Log {
			continue
		}
		if errRe != nil && errRe.MatchString(l.Text) {
			return out, &console.CommandError{Command: sent, Reply: l.Text}
		}
		out = append(out, l)
	}
	return out, nil
}

// capturePEM sends send and returns the PEM block of type typ that the
// device prints before its prompt. A prompt without the block is an error:
// the STM32 reference reports CSR failures only in log lines.
func (p *Profile) capturePEM(ctx context.Context, c *console.Console, send, typ string) ([]byte, error) {
	begin, end := "-----BEGIN "+typ+"-----", "-----END "+typ+"-----"
	c.Skip(c.Mark())
	if err := c.Send(send); err != nil {
		return nil, err
	}
	echo, err := c.Expect(ctx, exactLine(send))
	if err != nil {
		return nil, err
	}
	for {
		if err := c.ExpectPrompt(ctx); err != nil {
			return nil, fmt.Errorf("waiting for the %s PEM: %w", typ, err)
		}
		out, err := p.outputAfter(c, echo.Seq, send)
		if err != nil {
			return nil, err
		}
		var block []string
		inside, done := false, false
		for _, l := range out {
			t := strings.TrimSpace(strings.Trim(l.Text, "\x00"))
			switch {
			case t == begin:
				inside, block = true, []string{t}
			case inside && t == end:
				block = append(block, t)
				inside, done = false, true
			case inside:
				block = append(block, t)
			}
		}
		switch {
		case done:
			return []byte(strings.Join(block, "\n") + "\n"), nil
		case !inside:
			return nil, fmt.Errorf("the device printed its prompt but no %s PEM (it reports this failure only in its log)", typ)
		}
		// BEGIN without END: a prompt redrawn around a log line; wait on.
	}
}

// importPEM sends the import command, then the PEM line by line, each after
// the CLI's prompt, and requires ok among the lines after the last one.
func (p *Profile) importPEM(ctx context.Context, c *console.Console, send string, lines []string, ok *regexp.Regexp) error {
	if _, err := p.sendLine(ctx, c, send); err != nil {
		return err
	}
	var out []console.Line
	for i, l := range lines {
		var err error
		if out, err = p.sendLine(ctx, c, l); err != nil {
			return fmt.Errorf("PEM line %d of %d: %w", i+1, len(lines), err)
		}
	}
	for _, l := range out {
		if ok.MatchString(l.Text) {
			return nil
		}
	}
	return fmt.Errorf("no line matching %q after the PEM's last line (the CLI prints nothing when the PEM does not parse)", ok.String())
}

// wrapPEM re-encodes the first PEM block of doc with base64 lines of at
// most maxLine characters.
func wrapPEM(doc []byte, maxLine int) ([]string, error) {
	blk, _ := pem.Decode(doc)
	if blk == nil {
		return nil, errors.New("no PEM block to import")
	}
	if len(blk.Headers) > 0 {
		return nil, fmt.Errorf("the %s PEM has headers; the CLI takes plain blocks", blk.Type)
	}
	begin, end := "-----BEGIN "+blk.Type+"-----", "-----END "+blk.Type+"-----"
	if len(begin) > maxLine {
		return nil, fmt.Errorf("the PEM header %q is longer than the CLI's %d-character lines", begin, maxLine)
	}
	b64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	lines := []string{begin}
	for len(b64) > maxLine {
		lines = append(lines, b64[:maxLine])
		b64 = b64[maxLine:]
	}
	if b64 != "" {
		lines = append(lines, b64)
	}
	return append(lines, end), nil
}
