// Package grabtest runs grabbers against scripted and hostile servers over
// net.Pipe, so protocol tests need no sockets.
package grabtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
)

// Server is the server end of a pipe as a script sees it.
type Server struct {
	T    testing.TB
	Conn net.Conn // replaced by a *tls.Conn after StartTLS
	// Got is everything the client sent since the last Expect matched.
	Got []byte
}

// Step is one action of a scripted server; an error ends the script and
// closes the connection.
type Step func(s *Server) error

// Send writes b to the client.
func Send(b string) Step {
	return func(s *Server) error {
		_, err := s.Conn.Write([]byte(b))
		return err
	}
}

// Expect reads until the client's bytes since the previous Expect contain
// want, and fails the test if the client stops first.
func Expect(want string) Step {
	return func(s *Server) error {
		buf := make([]byte, 4096)
		for !bytes.Contains(s.Got, []byte(want)) {
			n, err := s.Conn.Read(buf)
			s.Got = append(s.Got, buf[:n]...)
			if err != nil && !bytes.Contains(s.Got, []byte(want)) {
				s.T.Errorf("server: client never sent %q; got %q (%v)", want, s.Got, err)
				return err
			}
		}
		i := bytes.Index(s.Got, []byte(want))
		s.Got = append([]byte(nil), s.Got[i+len(want):]...)
		return nil
	}
}

// ExpectN reads exactly n bytes and hands them to check, which may fail the
// test; a nil check accepts anything.
func ExpectN(n int, check func(t testing.TB, b []byte)) Step {
	return func(s *Server) error {
		for len(s.Got) < n {
			buf := make([]byte, n-len(s.Got))
			m, err := s.Conn.Read(buf)
			s.Got = append(s.Got, buf[:m]...)
			if err != nil && len(s.Got) < n {
				s.T.Errorf("server: client sent %d bytes, want %d: %v", len(s.Got), n, err)
				return err
			}
		}
		if check != nil {
			check(s.T, s.Got[:n])
		}
		s.Got = append([]byte(nil), s.Got[n:]...)
		return nil
	}
}

// StartTLS runs a TLS server handshake with a fresh self-signed certificate
// for "reach.test" and continues the script inside TLS.
func StartTLS() Step {
	return func(s *Server) error {
		tc := tls.Server(s.Conn, ServerTLSConfig(s.T))
		if err := tc.Handshake(); err != nil {
			s.T.Errorf("server: tls handshake: %v", err)
			return err
		}
		s.Conn = tc
		return nil
	}
}

// Script returns a server that runs steps in order, then keeps reading and
// discarding until the client closes.
func Script(steps ...Step) func(testing.TB, net.Conn) {
	return func(t testing.TB, c net.Conn) {
		s := &Server{T: t, Conn: c}
		for _, st := range steps {
			if err := st(s); err != nil {
				return
			}
		}
		drain(s.Conn)
	}
}

// ServerTLSConfig returns a TLS config with a new self-signed ECDSA
// certificate whose subject common name is "reach.test".
func ServerTLSConfig(t testing.TB) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "reach.test"},
		DNSNames:     []string{"reach.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// Run grabs with g from a pipe whose other end runs server, under a context
// that expires after timeout, with MaxBanner limit, and returns the result,
// error and time taken. The pipe is closed and the server waited for before
// Run returns.
func Run(t testing.TB, g fingerprint.Grabber, server func(testing.TB, net.Conn), timeout time.Duration, limit int) (fingerprint.Result, time.Duration, error) {
	t.Helper()
	return RunTarget(t, g, server, timeout, fingerprint.Target{MaxBanner: limit})
}

// RunTarget is Run for grabbers that need more of the target than its
// MaxBanner, such as the address an HTTP request names.
func RunTarget(t testing.TB, g fingerprint.Grabber, server func(testing.TB, net.Conn), timeout time.Duration, target fingerprint.Target) (fingerprint.Result, time.Duration, error) {
	t.Helper()
	client, srv := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer srv.Close()
		server(t, srv)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res, err := g.Grab(ctx, client, target)
	took := time.Since(start)
	client.Close()
	srv.Close()
	wg.Wait()
	return res, took, err
}

// drain reads and discards until c fails, so that the client's writes on a
// synchronous pipe never block.
func drain(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// Hostile describes how the hostile servers talk to one grabber, and what
// the grabber must make of them beyond the checks every grabber gets.
type Hostile struct {
	// Prefix is sent before the trickle, flood and garbage, so that the
	// grabber gets past its first check (a greeting, a reply header), and
	// before the junk of the "prefix junk" case.
	Prefix string
	// Trickle, if set, is what the trickle server sends one byte at a time,
	// over and over, in place of Prefix and then 'a' forever.
	Trickle string
	// Flood, if set, is the pattern the flood server repeats for 4 MiB in
	// place of Prefix and then 'A's.
	Flood string
	// AcceptsAnything is set for grabbers that recognise any bytes (the
	// banner fallback); they may succeed on every case that sends bytes.
	AcceptsAnything bool
	// Pass lists the cases the grabber must succeed on; Check says with
	// what result. Pass, NotRecognised and Timeout name cases as RunHostile
	// does, and naming one it lacks fails the test.
	Pass []string
	// NotRecognised lists the cases whose error must wrap
	// fingerprint.ErrNotRecognised.
	NotRecognised []string
	// Timeout lists the cases whose error must be the deadline's.
	Timeout []string
	// Limit is the MaxBanner the cases run with and that the banner is held
	// to; the package's Limit if zero. Every other field is held to the
	// larger of the two.
	Limit int
	// Target is the target grabbed, with MaxBanner set to the limit.
	Target fingerprint.Target
	// Check, if set, is called with each case's name and outcome after the
	// shared checks, for assertions of the grabber's own.
	Check func(t *testing.T, name string, res fingerprint.Result, err error)
}

// Limit is the MaxBanner the hostile servers run with by default, in bytes.
const Limit = 1024

// Junk is the short line of binary junk the "junk" and "prefix junk"
// servers send before they close.
const Junk = "\x00\xff\x13garbage\r\n\r\n\x80\x81\n"

// RunHostile runs g against servers that send nothing ("silent"), trickle
// one byte every 50 ms forever ("trickle"), close at once ("close"), send
// 4 MiB ("flood"), send 4 KiB of random bytes and then nothing
// ("garbage"), send Junk and close ("junk"), and, when h has a Prefix, send
// Prefix and Junk and close ("prefix junk"). It asserts that g returns
// within 2 s of a 300 ms deadline, fails where it must and in the way h
// says, succeeds where h says, and keeps the banner within the limit and
// every other field within the larger of the limit and Limit.
func RunHostile(t *testing.T, g fingerprint.Grabber, h Hostile) {
	t.Helper()
	limit := h.Limit
	if limit == 0 {
		limit = Limit
	}
	garbage := make([]byte, 4096)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	trickle := h.Trickle
	if trickle == "" {
		trickle = "a"
	}
	flood := h.Flood
	if flood == "" {
		flood = "A"
	}
	type hostileCase struct {
		name    string
		server  func(testing.TB, net.Conn)
		mayPass bool // success is acceptable
	}
	cases := []hostileCase{
		{"silent", func(_ testing.TB, c net.Conn) { drain(c) }, false},
		{"trickle", func(_ testing.TB, c net.Conn) {
			go drain(c)
			if h.Trickle == "" {
				if _, err := c.Write([]byte(h.Prefix)); err != nil {
					return
				}
			}
			for i := 0; ; i++ {
				if _, err := c.Write([]byte{trickle[i%len(trickle)]}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}, h.AcceptsAnything},
		{"close", func(testing.TB, net.Conn) {}, false},
		{"flood", func(_ testing.TB, c net.Conn) {
			go drain(c)
			chunk := bytes.Repeat([]byte(flood), max(1, 64<<10/len(flood)))
			if h.Flood == "" {
				if _, err := c.Write([]byte(h.Prefix)); err != nil {
					return
				}
			}
			for written := 0; written < 4<<20; written += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
			drain(c)
		}, h.AcceptsAnything},
		{"garbage", func(_ testing.TB, c net.Conn) {
			go drain(c)
			if _, err := c.Write(append([]byte(h.Prefix), garbage...)); err != nil {
				return
			}
			drain(c)
		}, h.AcceptsAnything},
		{"junk", func(_ testing.TB, c net.Conn) {
			go drain(c)
			_, _ = c.Write([]byte(Junk))
		}, h.AcceptsAnything},
	}
	if h.Prefix != "" {
		cases = append(cases, hostileCase{"prefix junk", func(_ testing.TB, c net.Conn) {
			go drain(c)
			_, _ = c.Write([]byte(h.Prefix + Junk))
		}, h.AcceptsAnything})
	}
	for _, names := range [][]string{h.Pass, h.NotRecognised, h.Timeout} {
		for _, name := range names {
			if !slices.ContainsFunc(cases, func(c hostileCase) bool { return c.name == name }) {
				t.Errorf("no hostile case %q", name)
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := h.Target
			target.MaxBanner = limit
			res, took, err := RunTarget(t, g, tc.server, 300*time.Millisecond, target)
			if took > 2*time.Second {
				t.Errorf("took %v, want under 2s with a 300ms deadline", took)
			}
			switch {
			case slices.Contains(h.Pass, tc.name):
				if err != nil {
					t.Errorf("error %v, want success; result %+v", err, res)
				}
			case err == nil && !tc.mayPass:
				t.Errorf("no error; result %+v", res)
			}
			if slices.Contains(h.NotRecognised, tc.name) && !errors.Is(err, fingerprint.ErrNotRecognised) {
				t.Errorf("error %v does not wrap ErrNotRecognised", err)
			}
			if slices.Contains(h.Timeout, tc.name) && fingerprint.StatusOf(err) != fingerprint.StatusTimeout {
				t.Errorf("status %s (%v), want timeout", fingerprint.StatusOf(err), err)
			}
			if len(res.Banner) > limit {
				t.Errorf("banner is %d bytes, limit %d", len(res.Banner), limit)
			}
			CheckBounded(t, res, max(limit, Limit))
			if h.Check != nil {
				h.Check(t, tc.name, res, err)
			}
		})
	}
}

// CheckBounded fails t if any field of res is longer than limit bytes.
func CheckBounded(t testing.TB, res fingerprint.Result, limit int) {
	t.Helper()
	if len(res.Banner) > limit {
		t.Errorf("banner is %d bytes, limit %d", len(res.Banner), limit)
	}
	for name, v := range map[string]string{"service": res.Service, "product": res.Product, "version": res.Version} {
		if len(v) > limit {
			t.Errorf("%s is %d bytes, limit %d", name, len(v), limit)
		}
	}
	for k, v := range res.Details {
		if len(v) > limit {
			t.Errorf("details[%q] is %d bytes, limit %d", k, len(v), limit)
		}
	}
}
