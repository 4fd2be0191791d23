package mail

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// POP3 identifies POP3 servers; it is safe for concurrent use.
type POP3 struct{}

// NewPOP3 returns a POP3 grabber.
func NewPOP3() *POP3 { return &POP3{} }

// Name returns "pop3".
func (*POP3) Name() string { return "pop3" }

// Ports returns 110 and 995 (POP3 over implicit TLS, RFC 8314).
func (*POP3) Ports() []uint16 { return []uint16{110, 995} }

// Greets reports whether banner starts with the "+OK" of a POP3 greeting
// (RFC 1939 §4).
func (*POP3) Greets(banner []byte) bool { return bytes.HasPrefix(banner, []byte("+OK")) }

// pop3Products names POP3 servers by their greeting or IMPLEMENTATION.
var pop3Products = []product{
	{regexp.MustCompile(`Dovecot`), "Dovecot"},
	{regexp.MustCompile(`Cyrus POP3(?: v([0-9][0-9.]*))?`), "Cyrus"},
	{regexp.MustCompile(`Courier`), "Courier"},
	{regexp.MustCompile(`Microsoft Exchange`), "Microsoft Exchange"},
	{regexp.MustCompile(`Qpopper(?: \(version ([0-9][0-9.]*)\))?`), "Qpopper"},
}

// POP3Product names the server behind a POP3 greeting or IMPLEMENTATION
// capability, with its version when it is given.
func POP3Product(text string) (string, string) { return productOf(pop3Products, text) }

// Grab reads the greeting, sends CAPA (RFC 2449) and upgrades with STLS
// when the server offers it.
func (g *POP3) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	s, err := newSession(ctx, conn, t.Limit())
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("pop3: %w", err)
	}
	if head, err := s.br.Peek(3); string(head) != "+OK" {
		return fingerprint.Result{}, notMail("pop3", head, err)
	}
	line, err := s.tp.ReadLine()
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("pop3: read greeting: %w", err)
	}
	greeting := strings.TrimSpace(strings.TrimPrefix(line, "+OK"))
	res := fingerprint.Result{Service: "pop3", Banner: s.banner(), Details: map[string]string{"greeting": clip(greeting, s.limit)}}
	res.Product, res.Version = POP3Product(greeting)

	if err := s.send("CAPA"); err != nil {
		return res, fmt.Errorf("pop3: send capa: %w", err)
	}
	line, err = s.tp.ReadLine()
	if err != nil {
		return res, fmt.Errorf("pop3: capa: %w", err)
	}
	switch {
	case strings.HasPrefix(line, "-ERR"):
		return res, nil // no CAPA before RFC 2449
	case !strings.HasPrefix(line, "+OK"):
		return res, fmt.Errorf("pop3: capa reply %q", clip(line, 32))
	}
	lines, err := s.tp.ReadDotLines()
	if err != nil {
		return res, fmt.Errorf("pop3: capa: %w", err)
	}
	caps := Capabilities(lines)
	res.Details["capabilities"] = clip(strings.Join(caps, ", "), s.limit)
	stls := false
	for _, c := range caps {
		name, arg, _ := strings.Cut(c, " ")
		switch strings.ToUpper(name) {
		case "STLS":
			stls = true
			res.Details["starttls"] = "offered"
		case "IMPLEMENTATION":
			res.Details["implementation"] = clip(arg, s.limit)
			if res.Product == "" {
				res.Product, res.Version = POP3Product(arg)
			}
		}
	}
	if !stls {
		return res, nil
	}
	if err := s.send("STLS"); err != nil {
		return res, fmt.Errorf("pop3: send stls: %w", err)
	}
	line, err = s.tp.ReadLine()
	if err != nil || !strings.HasPrefix(line, "+OK") {
		if err == nil {
			err = fmt.Errorf("%s", line)
		}
		res.Details["starttls_error"] = clip(err.Error(), s.limit)
		return res, nil
	}
	s.upgrade(ctx, &res, t.Hostname)
	return res, nil
}

// Capabilities returns the non-empty, trimmed lines of a CAPA reply.
func Capabilities(lines []string) []string {
	var caps []string
	for _, l := range lines {
		if c := strings.TrimSpace(l); c != "" {
			caps = append(caps, c)
		}
	}
	return caps
}
