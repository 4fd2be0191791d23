// Package memcached identifies memcached servers by the text protocol
// (memcached protocol.txt, "Commands": version and "General-purpose
// statistics"): it sends "version" and then "stats".
//
// The text protocol has no authentication, so a VERSION reply means anyone
// can read and write the cache: Auth none. A server started with an ASCII
// auth file answers "CLIENT_ERROR unauthenticated" instead: Auth required.
//
// Details keys:
//
//	curr_items  the number of items stored, from stats
//	error       an error reply to version
package memcached

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"unicode"

	"github.com/reachscan/reach/fingerprint"
)

// Grabber identifies memcached; it is safe for concurrent use.
type Grabber struct{}

// New returns a memcached grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "memcached".
func (*Grabber) Name() string { return "memcached" }

// Ports returns the IANA-registered port 11211.
func (*Grabber) Ports() []uint16 { return []uint16{11211} }

// Grab sends version and stats on conn.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("memcached: set deadline: %w", err)
		}
	}
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return fingerprint.Result{}, fmt.Errorf("memcached: send version: %w", err)
	}
	buf := make([]byte, t.Limit())
	line, err := fingerprint.ReadUntil(ctx, conn, buf, func(b []byte) bool { return bytes.Contains(b, []byte("\r\n")) })
	if !bytes.Contains(line, []byte("\r\n")) {
		if len(line) == len(buf) {
			return fingerprint.Result{}, fmt.Errorf("memcached: version reply longer than %d bytes: %w", len(buf), fingerprint.ErrNotRecognised)
		}
		return fingerprint.Result{}, fmt.Errorf("memcached: read version reply: %w", err)
	}
	res, err := ParseVersion(line)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("memcached: %w", err)
	}
	res.Banner = line
	if res.Auth != fingerprint.AuthNone {
		return res, nil
	}
	// stats is a nicety: a proxy in front of memcached may not answer it.
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		return res, nil
	}
	stats, _ := fingerprint.ReadUntil(ctx, conn, buf, statsDone)
	if n := ParseStats(stats)["curr_items"]; n != "" {
		res.Details["curr_items"] = n
	}
	return res, nil
}

// statsDone reports whether b ends with the last line of a reply to stats:
// END, or ERROR, CLIENT_ERROR or SERVER_ERROR (protocol.txt, "Error
// strings").
func statsDone(b []byte) bool {
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return false
	}
	last := b[bytes.LastIndex(b[:len(b)-2], []byte("\n"))+1:]
	return string(last) == "END\r\n" || bytes.HasPrefix(last, []byte("ERROR")) ||
		bytes.HasPrefix(last, []byte("CLIENT_ERROR")) || bytes.HasPrefix(last, []byte("SERVER_ERROR"))
}

// ParseVersion interprets the reply to version: "VERSION <version>" CRLF,
// or "CLIENT_ERROR unauthenticated" from a server that wants credentials.
// Every string it returns is copied from line.
func ParseVersion(line []byte) (fingerprint.Result, error) {
	s, _, _ := strings.Cut(string(line), "\n")
	s = strings.TrimSuffix(s, "\r")
	res := fingerprint.Result{Service: "memcached", Product: "memcached", Details: map[string]string{}}
	switch {
	case strings.HasPrefix(s, "VERSION ") && !strings.ContainsFunc(s, unicode.IsControl):
		res.Version = strings.TrimSpace(s[len("VERSION "):])
		res.Auth = fingerprint.AuthNone
		return res, nil
	case strings.HasPrefix(s, "CLIENT_ERROR") && strings.Contains(s, "unauthenticated"):
		res.Details["error"] = s
		res.Auth = fingerprint.AuthRequired
		return res, nil
	}
	return fingerprint.Result{}, fmt.Errorf("version reply %q: %w", s[:min(len(s), 32)], fingerprint.ErrNotRecognised)
}

// ParseStats reads "STAT <name> <value>" lines up to END.
func ParseStats(b []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			break
		}
		if rest, ok := strings.CutPrefix(line, "STAT "); ok {
			if k, v, ok := strings.Cut(rest, " "); ok && !strings.ContainsFunc(k, unicode.IsControl) {
				m[k] = v
			}
		}
	}
	return m
}
