package target

import (
	"crypto/tls"
	"time"
)

// The optional capabilities of a target, all in one place. A driver's
// Target implements the ones it has; the session checks for them.

// Exiter is a target that knows when it died on its own (an emulator
// process that exited): the session waits on Done to tell a crash from a
// closed console, and Err says why (wrapping harness.ErrFirmwareCrash when
// the firmware caused it).
type Exiter interface {
	Done() <-chan struct{}
	Err() error
}

// SessionConfigurer is a target that sets its session up itself before it
// starts: a board on the bench LAN gets the broker's TLS listener on an
// address the board can reach, an endpoint and a CA that signs its CSR.
type SessionConfigurer interface {
	ConfigureSession(s *SessionSetup) error
}

// SessionSetup is the part of a session a target may change.
type SessionSetup struct {
	// Read-only facts about the device profile.
	ProfileName string
	Transport   string // the profile's transport: module | network
	NeedsSigner bool   // the profile provisions certificates (pki steps)

	// Vars fill the profile's placeholders (the target may add or change).
	Vars map[string]string
	// Endpoint is the host the device is told to dial.
	Endpoint string
	// BrokerTLSAddr, with BrokerTLS, makes the broker listen for mutual TLS
	// there (host:port the device can reach).
	BrokerTLSAddr string
	BrokerTLS     *tls.Config
	// Signer, when set, signs the certificate requests the profile's pki
	// steps capture.
	Signer Signer
	// ModuleReadyDelay, when set, replaces the emulated module's power-up
	// delay (host time): a target whose clock runs ahead of the host
	// needs it short against the firmware's timeouts.
	ModuleReadyDelay time.Duration
}

// Signer is a lab CA (harness/device/provision.CA is one).
type Signer interface {
	SignCSR(thing string, csrPEM []byte) ([]byte, error)
	CACert() []byte
}
