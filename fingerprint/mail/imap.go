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

// IMAP identifies IMAP servers; it is safe for concurrent use.
type IMAP struct{}

// NewIMAP returns an IMAP grabber.
func NewIMAP() *IMAP { return &IMAP{} }

// Name returns "imap".
func (*IMAP) Name() string { return "imap" }

// Ports returns 143 and 993 (IMAP over implicit TLS, RFC 8314).
func (*IMAP) Ports() []uint16 { return []uint16{143, 993} }

// maxLines bounds the untagged lines read before a tagged reply.
const maxLines = 32

// Greets reports whether banner starts with the untagged OK or PREAUTH of
// an IMAP greeting (RFC 9051 §7.1), in any case.
func (*IMAP) Greets(banner []byte) bool {
	u := bytes.ToUpper(banner[:min(len(banner), 10)])
	return bytes.HasPrefix(u, []byte("* OK")) || bytes.HasPrefix(u, []byte("* PREAUTH"))
}

// imapProducts names IMAP servers by their greeting.
var imapProducts = []product{
	{regexp.MustCompile(`Dovecot`), "Dovecot"},
	{regexp.MustCompile(`Cyrus IMAP(?:4)?(?: v?([0-9][0-9.]*))?`), "Cyrus"},
	{regexp.MustCompile(`Courier-IMAP`), "Courier"},
	{regexp.MustCompile(`Microsoft Exchange`), "Microsoft Exchange"},
	{regexp.MustCompile(`Zimbra`), "Zimbra"},
}

// IMAPProduct names the server behind an IMAP greeting, with its version
// when the greeting gives one.
func IMAPProduct(greeting string) (string, string) { return productOf(imapProducts, greeting) }

// Grab reads the greeting, sends CAPABILITY and upgrades with STARTTLS when
// the server offers it.
func (g *IMAP) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	s, err := newSession(ctx, conn, t.Limit())
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("imap: %w", err)
	}
	if head, err := s.br.Peek(4); !g.Greets(head) {
		if head, _ = s.br.Peek(9); !g.Greets(head) {
			return fingerprint.Result{}, notMail("imap", head, err)
		}
	}
	line, err := s.tp.ReadLine()
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("imap: read greeting: %w", err)
	}
	status, greeting, _ := strings.Cut(line[2:], " ")
	res := fingerprint.Result{Service: "imap", Banner: s.banner(), Details: map[string]string{"greeting": clip(greeting, s.limit)}}
	res.Product, res.Version = IMAPProduct(greeting)
	if strings.EqualFold(status, "PREAUTH") {
		res.Auth = fingerprint.AuthNone // RFC 9051 §7.1.4: already authenticated
	}

	tagged := func(tag, cmd string) (string, []string, error) {
		if err := s.send(tag + " " + cmd); err != nil {
			return "", nil, err
		}
		var untagged []string
		for range maxLines {
			l, err := s.tp.ReadLine()
			if err != nil {
				return "", untagged, err
			}
			if rest, ok := strings.CutPrefix(l, tag+" "); ok {
				return rest, untagged, nil
			}
			untagged = append(untagged, l)
		}
		return "", untagged, fmt.Errorf("no reply to %s in %d lines", cmd, maxLines)
	}
	_, untagged, err := tagged("a1", "CAPABILITY")
	var caps []string
	for _, l := range untagged {
		if c, ok := Capability(l); ok {
			caps = c
		}
	}
	if caps == nil {
		caps, _ = Capability(greeting) // RFC 9051 §7.1: a CAPABILITY response code in the greeting
	}
	if err != nil && caps == nil {
		return res, fmt.Errorf("imap: capability: %w", err)
	}
	res.Details["capabilities"] = clip(strings.Join(caps, ", "), s.limit)
	starttls := false
	for _, c := range caps {
		if strings.EqualFold(c, "STARTTLS") {
			starttls = true
			res.Details["starttls"] = "offered"
		}
	}
	if !starttls || err != nil {
		return res, nil
	}
	reply, _, err := tagged("a2", "STARTTLS")
	if err != nil || !strings.HasPrefix(strings.ToUpper(reply), "OK") {
		if err == nil {
			err = fmt.Errorf("%s", reply)
		}
		res.Details["starttls_error"] = clip(err.Error(), s.limit)
		return res, nil
	}
	s.upgrade(ctx, &res, t.Hostname)
	return res, nil
}

// Capability returns the capabilities of an untagged CAPABILITY response
// ("* CAPABILITY IMAP4rev1 STARTTLS") or of a greeting that starts with a
// CAPABILITY response code ("[CAPABILITY IMAP4rev1 STARTTLS] ready").
func Capability(line string) ([]string, bool) {
	u := strings.ToUpper(line)
	switch {
	case strings.HasPrefix(u, "* CAPABILITY "):
		return strings.Fields(line[len("* CAPABILITY "):]), true
	case strings.HasPrefix(u, "[CAPABILITY "):
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return nil, false
		}
		return strings.Fields(line[len("[CAPABILITY "):end]), true
	}
	return nil, false
}
