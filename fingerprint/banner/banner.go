// Package banner is the fallback grabber: it keeps whatever a service
// sends, unprompted or after an empty line, without naming the protocol.
//
// It waits up to PromptAfter for the server to speak first; a server that
// stays silent gets "\r\n", which makes many line-based services answer
// with an error or a prompt. It then reads until the server pauses for
// Quiet, the banner limit is reached or the deadline passes.
//
// Details keys:
//
//	prompted  "yes" when the bytes came only after the grabber sent "\r\n"
package banner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/reachscan/reach/fingerprint"
)

// Grabber keeps the first bytes of any service; it is safe for concurrent
// use.
type Grabber struct {
	// PromptAfter is how long to wait for unprompted bytes before sending
	// "\r\n"; at most half the time left before the deadline is spent.
	PromptAfter time.Duration
	// Quiet is the pause in the server's sending that ends the banner.
	Quiet time.Duration
}

// New returns a banner grabber that prompts after 1 s of silence and stops
// after a 250 ms pause.
func New() *Grabber { return &Grabber{PromptAfter: time.Second, Quiet: 250 * time.Millisecond} }

// Name returns "banner".
func (*Grabber) Name() string { return "banner" }

// Ports returns nil: the fallback is not tried first anywhere.
func (*Grabber) Ports() []uint16 { return nil }

// Grab reads what the server on conn sends, prompting it if it is silent.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	dl, hasDL := ctx.Deadline()
	if hasDL {
		if err := conn.SetDeadline(dl); err != nil {
			// the peer is already gone (a pipe refuses deadlines then):
			// nothing to read
			return fingerprint.Result{}, fmt.Errorf("banner: %w: set deadline: %v", fingerprint.ErrNotRecognised, err)
		}
	}
	wait := g.PromptAfter
	if hasDL {
		wait = min(wait, time.Until(dl)/2)
	}
	buf := make([]byte, t.Limit())
	res := fingerprint.Result{Service: "banner", Details: map[string]string{}}
	got, err := g.read(conn, buf, time.Now().Add(wait), dl)
	if len(got) == 0 && errors.Is(err, os.ErrDeadlineExceeded) && (!hasDL || time.Now().Before(dl)) {
		if _, err := conn.Write([]byte("\r\n")); err != nil {
			return fingerprint.Result{}, fmt.Errorf("banner: send prompt: %w", err)
		}
		res.Details["prompted"] = "yes"
		got, err = g.read(conn, buf, dl, dl)
	}
	if len(got) == 0 {
		return fingerprint.Result{}, fmt.Errorf("banner: nothing received (%v): %w", err, fingerprint.ErrNotRecognised)
	}
	res.Banner = got
	return res, nil
}

// read fills buf from conn: the first byte must come by first, each later
// chunk within Quiet of the one before, and everything by last (zero: no
// limit). It returns what was read and the error that ended reading.
func (g *Grabber) read(conn net.Conn, buf []byte, first, last time.Time) ([]byte, error) {
	n := 0
	d := first
	for n < len(buf) {
		if !last.IsZero() && last.Before(d) {
			d = last
		}
		if err := conn.SetReadDeadline(d); err != nil {
			return buf[:n], err
		}
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			return buf[:n], err
		}
		d = time.Now().Add(g.Quiet)
	}
	return buf[:n], nil
}
