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

// SMTP identifies SMTP servers; it is safe for concurrent use.
type SMTP struct{}

// NewSMTP returns an SMTP grabber.
func NewSMTP() *SMTP { return &SMTP{} }

// Name returns "smtp".
func (*SMTP) Name() string { return "smtp" }

// Ports returns 25 (relay), 587 (submission, RFC 6409) and 465
// (submission over implicit TLS, RFC 8314).
func (*SMTP) Ports() []uint16 { return []uint16{25, 587, 465} }

// Greets reports whether banner is a 220 reply that says SMTP (or ESMTP).
// FTP servers greet with 220 too; ftp.Grabber.Greets takes the 220 replies
// without SMTP, so exactly one of the two claims a 220 greeting.
func (*SMTP) Greets(banner []byte) bool {
	return len(banner) >= 4 && string(banner[:3]) == "220" && (banner[3] == ' ' || banner[3] == '-') &&
		bytes.Contains(bytes.ToUpper(banner), []byte("SMTP"))
}

// smtpProducts names SMTP servers by their greeting.
var smtpProducts = []product{
	{regexp.MustCompile(`Postfix`), "Postfix"},
	{regexp.MustCompile(`Exim(?: ([0-9][0-9.]*))?`), "Exim"},
	{regexp.MustCompile(`Microsoft ESMTP MAIL Service|Microsoft Exchange`), "Microsoft Exchange"},
	{regexp.MustCompile(`Sendmail(?: ([0-9][0-9.]*))?`), "Sendmail"},
	{regexp.MustCompile(`OpenSMTPD`), "OpenSMTPD"},
	{regexp.MustCompile(`Haraka(?:/([0-9][0-9.]*))?`), "Haraka"},
}

// SMTPProduct names the server behind an SMTP greeting, with its version
// when the greeting gives one.
func SMTPProduct(greeting string) (string, string) { return productOf(smtpProducts, greeting) }

// Grab reads the greeting, sends EHLO and upgrades with STARTTLS when the
// server offers it.
func (g *SMTP) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	s, err := newSession(ctx, conn, t.Limit())
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("smtp: %w", err)
	}
	// textproto keeps reading after a bad first line that ends in '-', so
	// check the shape of the code first.
	if head, err := s.br.Peek(4); !isCode(head) {
		return fingerprint.Result{}, notMail("smtp", head, err)
	}
	code, greeting, err := s.tp.ReadResponse(0)
	if err != nil && code == 0 {
		return fingerprint.Result{}, fmt.Errorf("smtp: read greeting: %w", err)
	}
	if code != 220 {
		return fingerprint.Result{}, fmt.Errorf("smtp: greeting %d: %w", code, fingerprint.ErrNotRecognised)
	}
	res := fingerprint.Result{Service: "smtp", Banner: s.banner(), Details: map[string]string{}}
	res.Details["greeting"] = clip(firstLine(greeting), s.limit)
	res.Product, res.Version = SMTPProduct(greeting)
	saysSMTP := strings.Contains(strings.ToUpper(greeting), "SMTP")

	if err := s.send("EHLO reach.invalid"); err != nil {
		return identified(res, saysSMTP, fmt.Errorf("smtp: send ehlo: %w", err))
	}
	code, msg, err := s.tp.ReadResponse(0)
	if code != 250 {
		if err == nil {
			err = fmt.Errorf("ehlo reply %d", code)
		}
		return identified(res, saysSMTP, fmt.Errorf("smtp: ehlo: %w", err))
	}
	exts := Extensions(msg)
	res.Details["extensions"] = clip(strings.Join(exts, ", "), s.limit)
	for _, e := range exts {
		if strings.EqualFold(e, "STARTTLS") {
			res.Details["starttls"] = "offered"
		}
	}
	if res.Details["starttls"] == "" {
		return res, nil
	}
	if err := s.send("STARTTLS"); err != nil {
		return res, fmt.Errorf("smtp: send starttls: %w", err)
	}
	code, msg, err = s.tp.ReadResponse(0)
	if code != 220 {
		if err == nil {
			err = fmt.Errorf("%d %s", code, firstLine(msg))
		}
		res.Details["starttls_error"] = clip(err.Error(), s.limit)
		return res, nil
	}
	s.upgrade(ctx, &res, t.Hostname)
	return res, nil
}

// identified keeps res (with err) when the greeting said SMTP, and
// otherwise reports that the peer is not an SMTP server.
func identified(res fingerprint.Result, saysSMTP bool, err error) (fingerprint.Result, error) {
	if saysSMTP {
		return res, err
	}
	return fingerprint.Result{}, fmt.Errorf("%w: %w", err, fingerprint.ErrNotRecognised)
}

// Extensions returns the EHLO keywords with their parameters from a 250
// reply message (RFC 5321 §4.1.1.1: the first line is the server's name,
// each further line one extension).
func Extensions(msg string) []string {
	lines := strings.Split(msg, "\n")
	var exts []string
	for _, l := range lines[1:] {
		if e := strings.TrimSpace(l); e != "" {
			exts = append(exts, e)
		}
	}
	return exts
}
