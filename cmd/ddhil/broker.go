package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/harness"
)

func init() {
	register("broker", command{
		summary: "run the AWS IoT Core + Device Defender broker emulator",
		run: func(args []string, stdout, stderr io.Writer) (int, error) {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBroker(ctx, args, stdout, stderr)
		},
	})
}

const brokerHelp = `usage: ddhil broker [--mqtt ADDR] [--mqtts ADDR (--tls-dir D | --tls-ca F --tls-cert F --tls-key F)]
                    [--throttle DUR] [--policy open|strict] [--lenient] [--record FILE] ...

Plays AWS IoT Core + Device Defender for devices under test: answers reports
on $aws/things/<thing>/defender/metrics/{json,cbor} on their accepted/rejected
topics, throttles, refuses what AWS refuses (QoS 2, >128 KB, retained $aws
publishes, publishes on response topics) by closing the connection, and logs
every event. It prints the bound addresses, then one line per connection,
report and refusal, and runs until SIGINT or SIGTERM, when it flushes the
--record file (JSON Lines, one broker event per line).

--tls-dir reads ca.pem, server.pem and server-key.pem as written by
'ddhil certs init'. Port 0 picks a free port.

exit status:
  0  stopped by a signal
  2  usage error
  3  the broker could not start (address in use, unreadable certificates, ...)

flags:
`

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("broker", stderr)
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "plain MQTT listen `address`")
	mqttsAddr := fs.String("mqtts", "", "mutual-TLS listen `address` (default 127.0.0.1:8883 when TLS files are given)")
	tlsDir := fs.String("tls-dir", "", "`directory` made by 'ddhil certs init' (ca.pem, server.pem, server-key.pem)")
	tlsCA := fs.String("tls-ca", "", "CA `file` that verifies device certificates")
	tlsCert := fs.String("tls-cert", "", "server certificate `file`")
	tlsKey := fs.String("tls-key", "", "server key `file`")
	throttle := fs.Duration("throttle", broker.DefaultThrottle, "per-thing report throttle window; 0 disables")
	policy := fs.String("policy", broker.PolicyOpen, "topic policy: open, or strict (own $aws/things/<thing>/ topics only)")
	lenient := fs.Bool("lenient", false, "accept unknown report keys (lint finding instead of InvalidPayload)")
	dups := fs.String("duplicate-ids", broker.DuplicatesAccept, "non-increasing report_id: accept, reject or drop")
	omitID := fs.Bool("omit-report-id", false, "leave reportId out of InvalidPayload rejections (AWS's documented example)")
	record := fs.String("record", "", "write the event log to `file` as JSON Lines")
	meterEvery := fs.Duration("meter-interval", 0, "also log every connection's traffic counters at this period")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), brokerHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *throttle < 0 {
		return exitUsage, fmt.Errorf("%w: --throttle must not be negative", errUsage)
	}

	cfg := broker.Config{
		MQTTAddr:              *mqttAddr,
		Throttle:              *throttle,
		Policy:                *policy,
		Lenient:               *lenient,
		DuplicateIDs:          *dups,
		OmitReportIDOnInvalid: *omitID,
		MeterInterval:         *meterEvery,
	}
	if *throttle == 0 {
		cfg.Throttle = broker.NoThrottle
	}
	tlsConf, err := brokerTLS(*tlsDir, *tlsCA, *tlsCert, *tlsKey)
	if err != nil {
		return exitCode(err), err
	}
	if tlsConf != nil {
		cfg.TLS = tlsConf
		cfg.MQTTSAddr = *mqttsAddr
		if cfg.MQTTSAddr == "" {
			cfg.MQTTSAddr = "127.0.0.1:8883"
		}
	} else if *mqttsAddr != "" {
		return exitUsage, fmt.Errorf("%w: --mqtts needs --tls-dir or --tls-ca, --tls-cert and --tls-key", errUsage)
	}

	var recFile *os.File
	if *record != "" {
		recFile, err = os.Create(*record)
		if err != nil {
			return exitLab, harness.LabError(fmt.Errorf("create record file: %w", err))
		}
		cfg.Record = recFile
	}
	b, err := broker.New(cfg)
	if err != nil {
		closeQuietly(recFile)
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err) // only configuration errors come from New
	}
	events, cancel := b.Subscribe(1024)
	defer cancel()
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for ev := range events {
			if line := logLine(ev); line != "" {
				fmt.Fprintln(stdout, line)
			}
		}
	}()
	if err := b.Start(ctx); err != nil {
		_ = b.Close()
		<-printed
		closeQuietly(recFile)
		return exitLab, harness.LabError(err)
	}
	fmt.Fprintf(stdout, "mqtt listening on %s\n", b.Addr("tcp"))
	if a := b.Addr("tls"); a != "" {
		fmt.Fprintf(stdout, "mqtts listening on %s\n", a)
	}

	<-ctx.Done()
	closeErr := b.Close()
	<-printed // the recorder closes subscriber channels on Close
	if n := b.Recorder().Dropped(); n > 0 {
		fmt.Fprintf(stderr, "ddhil broker: %d log lines skipped because the terminal was slow (the record is complete)\n", n)
	}
	if recFile != nil {
		if err := recFile.Close(); err != nil && closeErr == nil {
			closeErr = err
		}
	}
	if closeErr != nil {
		return exitLab, harness.LabError(fmt.Errorf("write record: %w", closeErr))
	}
	msg := fmt.Sprintf("broker stopped after %d events", len(b.Events()))
	if *record != "" {
		msg += ", recorded in " + *record
	}
	fmt.Fprintln(stdout, msg)
	return exitOK, nil
}

func closeQuietly(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// brokerTLS builds the TLS configuration from either --tls-dir or the three
// file flags; nil when TLS is not asked for.
func brokerTLS(dir, ca, cert, key string) (*tls.Config, error) {
	files := 0
	for _, f := range []string{ca, cert, key} {
		if f != "" {
			files++
		}
	}
	switch {
	case dir != "" && files > 0:
		return nil, fmt.Errorf("%w: use --tls-dir or the --tls-ca/--tls-cert/--tls-key files, not both", errUsage)
	case dir != "":
		ca, cert, key = filepath.Join(dir, certs.CAFile), filepath.Join(dir, certs.ServerFile), filepath.Join(dir, certs.ServerKeyFile)
	case files == 0:
		return nil, nil
	case files < 3:
		return nil, fmt.Errorf("%w: TLS needs all of --tls-ca, --tls-cert and --tls-key", errUsage)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("load server certificate: %w", err))
	}
	pool, err := certs.LoadPool(ca)
	if err != nil {
		return nil, harness.LabError(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// logLine renders the events worth a terminal line; "" for the rest.
func logLine(ev broker.Event) string {
	at := fmt.Sprintf("%9.3fs %-7s", ev.Mono.Seconds(), ev.ConnID)
	switch ev.Kind {
	case broker.EventConnect:
		s := fmt.Sprintf("%s connect client=%q remote=%s", at, ev.ClientID, ev.Remote)
		if ev.TLS != nil {
			s += fmt.Sprintf(" %s cn=%q", ev.TLS.Version, ev.TLS.PeerCN)
		}
		if ev.Error != "" {
			s += " REFUSED: " + ev.Error
		}
		return s
	case broker.EventReport:
		if ev.Result == nil {
			return ""
		}
		id := "?"
		if ev.Result.HeaderParsed {
			id = fmt.Sprint(ev.Result.ReportID)
		}
		s := fmt.Sprintf("%s report thing=%s format=%s report_id=%s ", at, ev.Thing, ev.Format, id)
		if p := ev.Result.Problem; p != nil {
			s += "REJECTED " + p.Code
			if p.Path != "" {
				s += " at " + p.Path
			}
			if p.Reason != "" {
				s += ": " + p.Reason
			}
		} else {
			s += "ACCEPTED"
			if len(ev.Result.Lint) > 0 {
				s += fmt.Sprintf(" (%d lint findings)", len(ev.Result.Lint))
			}
		}
		if ev.Reason != "" && ev.Result.Problem == nil {
			s += "; " + ev.Reason
		}
		return s
	case broker.EventResponse:
		if ev.Fault == "" {
			return ""
		}
		return fmt.Sprintf("%s response %s (%s)", at, ev.Fault, strings.TrimSpace(ev.Topic))
	case broker.EventPolicy:
		return fmt.Sprintf("%s refused client=%q %s: %s", at, ev.ClientID, ev.Reason, ev.Error)
	case broker.EventDisconnect:
		s := fmt.Sprintf("%s disconnect client=%q %s", at, ev.ClientID, ev.Reason)
		if ev.Error != "" {
			s += ": " + ev.Error
		}
		return s
	}
	return ""
}
