// Package mail identifies mail servers: SMTP (RFC 5321), POP3 (RFC 1939)
// and IMAP (RFC 9051, RFC 3501), three grabbers that read the greeting, ask
// for the server's extensions or capabilities, and upgrade with STARTTLS
// (RFC 3207), STLS (RFC 2595 §4) or STARTTLS (RFC 9051 §6.2.1) when it is
// offered, recording the TLS session. On the implicit-TLS ports (465, 995,
// 993) the pool does the TLS and the grabbers speak the same protocol.
//
// The upgrade offers no ALPN: servers guarding against cross-protocol
// attacks (RFC 7301 §3.2) refuse a handshake that offers only HTTP.
//
// Auth is left unknown for SMTP and POP3 (a mail server is meant to take
// connections), and is none for an IMAP server that greets with PREAUTH.
//
// Details keys:
//
//	greeting        the first line of the greeting, without its code or status
//	extensions      SMTP: the EHLO keywords, comma-separated ("PIPELINING, SIZE 10240000, STARTTLS")
//	capabilities    POP3 and IMAP: the capabilities, comma-separated
//	implementation  POP3: the IMPLEMENTATION capability (RFC 2449 §6.9)
//	starttls        "offered" when the server offers an upgrade
//	starttls_error  why the upgrade failed
package mail

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// product maps greeting text to a product; the first group, when there is
// one and it matched, is the version.
type product struct {
	re   *regexp.Regexp
	name string
}

// productOf names the server behind a greeting from table.
func productOf(table []product, greeting string) (string, string) {
	for _, p := range table {
		if m := p.re.FindStringSubmatch(greeting); m != nil {
			v := ""
			if len(m) > 1 {
				v = m[1]
			}
			return p.name, v
		}
	}
	return "", ""
}

// session is the text side of one connection.
type session struct {
	conn  net.Conn
	rec   *fingerprint.Recorder
	br    *bufio.Reader
	tp    *textproto.Reader
	limit int
}

// newSession sets conn's deadline from ctx and wraps it for line reading.
// The whole conversation reads at most max(4 × limit, 16 KiB) bytes, so a
// line without an end costs no more.
func newSession(ctx context.Context, conn net.Conn, limit int) (*session, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, fmt.Errorf("set deadline: %w", err)
		}
	}
	rec := &fingerprint.Recorder{R: conn, Max: limit}
	br := bufio.NewReader(&io.LimitedReader{R: rec, N: int64(max(4*limit, 16<<10))})
	return &session{conn: conn, rec: rec, br: br, tp: textproto.NewReader(br), limit: limit}, nil
}

// banner stops recording and returns what was consumed so far (read and
// not left in the buffer): the greeting, at most limit bytes of it.
func (s *session) banner() []byte {
	return s.rec.Consumed(s.br.Buffered())
}

// send writes one command line.
func (s *session) send(line string) error {
	_, err := io.WriteString(s.conn, line+"\r\n")
	return err
}

// starttls upgrades the connection after the server agreed to. Bytes the
// server sent after its agreement would be read as if protected, so they
// are refused (the STARTTLS command injection of CVE-2011-0411).
func (s *session) starttls(ctx context.Context, host string) (*fingerprint.TLSInfo, error) {
	if n := s.br.Buffered(); n > 0 {
		return nil, fmt.Errorf("%d bytes after the upgrade reply", n)
	}
	tc, info, err := fingerprint.HandshakeALPN(ctx, s.conn, host, nil)
	if err != nil {
		return nil, err
	}
	s.conn, s.rec.R = tc, tc
	return info, nil
}

// upgrade runs starttls and records the outcome in res.
func (s *session) upgrade(ctx context.Context, res *fingerprint.Result, host string) {
	info, err := s.starttls(ctx, host)
	if err != nil {
		res.Details["starttls_error"] = clip(err.Error(), s.limit)
		return
	}
	res.TLS = info
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string { return s[:min(len(s), n)] }

// firstLine returns the first line of a possibly multi-line message.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimRight(l, "\r")
}

// isCode reports whether b starts with an SMTP reply code: three digits,
// then a space or a hyphen (RFC 5321 §4.2).
func isCode(b []byte) bool {
	return len(b) >= 4 && '2' <= b[0] && b[0] <= '5' && '0' <= b[1] && b[1] <= '9' && '0' <= b[2] && b[2] <= '9' &&
		(b[3] == ' ' || b[3] == '-')
}

// notMail wraps a greeting that is not the protocol's.
func notMail(proto string, head []byte, err error) error {
	if len(head) > 0 {
		return fmt.Errorf("%s: greeting %q: %w", proto, head, fingerprint.ErrNotRecognised)
	}
	return fmt.Errorf("%s: read greeting: %w", proto, err)
}
