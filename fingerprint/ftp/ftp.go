// Package ftp identifies FTP servers (RFC 959) by their greeting, the
// features they list (FEAT, RFC 2389) and whether they let an anonymous
// user in (RFC 1635).
//
// Auth is none when "USER anonymous" and "PASS reach@" log in (230), and
// required when the server refuses (530 and other 5xx replies). The
// grabber never upgrades to TLS; it records that AUTH TLS (RFC 4217) is
// offered.
//
// Details keys:
//
//	features  the FEAT lines, comma-separated ("EPSV, MDTM, AUTH TLS, UTF8")
//	tls       "offered" when FEAT lists AUTH TLS or AUTH SSL
//	login     the last reply to the anonymous login ("230 Login successful.")
package ftp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// Grabber identifies FTP servers; it is safe for concurrent use.
type Grabber struct{}

// New returns an FTP grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "ftp".
func (*Grabber) Name() string { return "ftp" }

// Ports returns the IANA-registered control port 21.
func (*Grabber) Ports() []uint16 { return []uint16{21} }

// Greets reports whether banner is a 220 reply that does not mention SMTP:
// SMTP servers greet with 220 too (RFC 5321 §4.2), and nearly all of them
// say SMTP or ESMTP there, so the two checks never both hold.
func (*Grabber) Greets(banner []byte) bool {
	return len(banner) >= 4 && string(banner[:3]) == "220" && (banner[3] == ' ' || banner[3] == '-') &&
		!bytes.Contains(bytes.ToUpper(banner), []byte("SMTP"))
}

// products maps greeting text to a product; the first group, when there
// is one, is the version.
var products = []struct {
	re   *regexp.Regexp
	name string
}{
	{regexp.MustCompile(`vsFTPd ([0-9][0-9.]*)`), "vsftpd"},
	{regexp.MustCompile(`ProFTPD(?: ([0-9][0-9.]*[a-z]?))?`), "ProFTPD"},
	{regexp.MustCompile(`Pure-FTPd`), "Pure-FTPd"},
	{regexp.MustCompile(`FileZilla Server(?: version)?(?: ([0-9][0-9.]*))?`), "FileZilla Server"},
	{regexp.MustCompile(`Microsoft FTP Service`), "Microsoft FTP Service"},
	{regexp.MustCompile(`Serv-U FTP Server(?: v([0-9][0-9.]*))?`), "Serv-U"},
}

// Product names the server behind a greeting, with its version when the
// greeting gives one.
func Product(greeting string) (string, string) {
	for _, p := range products {
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

// Grab reads the greeting on conn, lists features and tries anonymous.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("ftp: set deadline: %w", err)
		}
	}
	limit := t.Limit()
	rec := &fingerprint.Recorder{R: conn, Max: limit}
	// The whole conversation reads at most this many bytes, so a reply
	// without an end costs no more.
	lr := &io.LimitedReader{R: rec, N: int64(max(4*limit, 16<<10))}
	br := bufio.NewReader(lr)
	// textproto keeps reading after a bad first line that ends in '-', so
	// check the shape of the code first.
	if head, err := br.Peek(4); err != nil || !isCode(head) {
		if len(head) == 4 {
			return fingerprint.Result{}, fmt.Errorf("ftp: greeting %q: %w", head, fingerprint.ErrNotRecognised)
		}
		return fingerprint.Result{}, fmt.Errorf("ftp: read greeting: %w", err)
	}
	tp := textproto.NewReader(br)
	code, greeting, err := tp.ReadResponse(0)
	if err != nil {
		if _, ok := err.(textproto.ProtocolError); ok {
			return fingerprint.Result{}, fmt.Errorf("ftp: greeting: %v: %w", err, fingerprint.ErrNotRecognised)
		}
		return fingerprint.Result{}, fmt.Errorf("ftp: read greeting: %w", err)
	}
	if code != 220 || strings.Contains(strings.ToUpper(greeting), "SMTP") {
		return fingerprint.Result{}, fmt.Errorf("ftp: greeting %d %q: %w", code, clip(greeting, 64), fingerprint.ErrNotRecognised)
	}
	// The banner is the greeting: what was consumed, not what is buffered.
	res := fingerprint.Result{Service: "ftp", Banner: rec.Consumed(br.Buffered()), Details: map[string]string{}}
	res.Product, res.Version = Product(greeting)

	reply := func(cmd string) (int, string, error) {
		if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
			return 0, "", err
		}
		return tp.ReadResponse(0)
	}
	code, msg, err := reply("FEAT")
	if err != nil && code == 0 {
		return res, fmt.Errorf("ftp: feat: %w", err)
	}
	if code == 211 {
		feats := Features(msg)
		res.Details["features"] = clip(strings.Join(feats, ", "), limit)
		for _, f := range feats {
			if u := strings.ToUpper(f); strings.HasPrefix(u, "AUTH TLS") || strings.HasPrefix(u, "AUTH SSL") {
				res.Details["tls"] = "offered"
			}
		}
	}
	code, msg, err = reply("USER anonymous")
	if code == 331 || code == 332 { // password needed (RFC 959 §5.4)
		code, msg, err = reply("PASS reach@")
	}
	if err != nil && code == 0 {
		return res, fmt.Errorf("ftp: anonymous login: %w", err)
	}
	first, _, _ := strings.Cut(msg, "\n")
	res.Details["login"] = clip(strconv.Itoa(code)+" "+first, limit)
	switch {
	case code == 230:
		res.Auth = fingerprint.AuthNone
	case code >= 500:
		res.Auth = fingerprint.AuthRequired
	}
	return res, nil
}

// Features returns the feature lines of a FEAT reply message (RFC 2389
// §3.2: a first line, one feature per line each after a space, and a last
// line), trimmed.
func Features(msg string) []string {
	lines := strings.Split(msg, "\n")
	var feats []string
	for i, l := range lines {
		if i == 0 || i == len(lines)-1 {
			continue
		}
		if f := strings.TrimSpace(l); f != "" {
			feats = append(feats, f)
		}
	}
	return feats
}

// isCode reports whether b starts with a reply code: three digits, then a
// space or a hyphen (RFC 959 §4.2).
func isCode(b []byte) bool {
	return len(b) >= 4 && '1' <= b[0] && b[0] <= '5' && '0' <= b[1] && b[1] <= '9' && '0' <= b[2] && b[2] <= '9' &&
		(b[3] == ' ' || b[3] == '-')
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string { return s[:min(len(s), n)] }
