package fingerprint_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
)

// server is a loopback listener playing one behaviour per connection.
func server(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().String()
}

// dialer sends each target to the loopback server standing in for it, so
// tests use documentation addresses and real ports without leaving the
// machine. A target with no server is refused.
func dialer(routes map[netip.AddrPort]string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, ok := routes[netip.MustParseAddrPort(addr)]
		if !ok {
			to = "127.0.0.1:1" // nothing listens on port 1: refused
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "unusual.example"},
		DNSNames: []string{"unusual.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func httpServe(c net.Conn) {
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "GET ") {
		return
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	body := "<html><title>Lab</title></html>"
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// redisServe answers INFO like an open Redis and closes on anything else
// (Redis drops a connection that sends an HTTP request line).
func redisServe(c net.Conn) {
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "*") {
		return
	}
	for range 4 { // $4 INFO $6 server
		r.ReadString('\n')
	}
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	fmt.Fprintf(c, "$%d\r\n%s\r\n", len(info), info)
}

func TestPoolIdentifiesByWhatAnswers(t *testing.T) {
	cert := selfSigned(t)
	ssh := server(t, func(c net.Conn) {
		c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
		time.Sleep(2 * time.Second) // no key exchange: a partial identification
	})
	https := server(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() == nil {
			httpServe(tc)
		}
	})
	silent := server(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	trickle := server(t, func(c net.Conn) {
		for range 200 { // a byte every 50 ms, longer than the deadline
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	garbage := server(t, func(c net.Conn) {
		c.Write([]byte("\x00\x01NOT TLS\xff\xfe\r\n"))
		time.Sleep(time.Second)
	})
	talker := server(t, func(c net.Conn) { c.Write([]byte("WELCOME TO THE LAB CONTROLLER v2\r\n")); time.Sleep(time.Second) })
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	routes := map[netip.AddrPort]string{
		ap("198.51.100.1:80"):   server(t, httpServe),
		ap("198.51.100.2:8022"): ssh,                   // SSH on an unusual port
		ap("198.51.100.3:7000"): server(t, redisServe), // Redis on an unusual port
		ap("198.51.100.4:9999"): https,                 // HTTPS on an unusual port
		ap("198.51.100.5:6379"): silent,
		ap("198.51.100.6:4000"): talker,
		ap("198.51.100.8:4100"): trickle,
		ap("198.51.100.9:443"):  garbage, // garbage where TLS is expected
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Fallback: registry.Fallback(),
		Dial: dialer(routes), Timeout: 1500 * time.Millisecond, Greeting: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target                                  string
		status                                  fingerprint.Status
		service, product, version, detail, want string
		tls                                     bool
	}{
		{"198.51.100.1:80", fingerprint.StatusSuccess, "http", "nginx", "1.22.1", "title", "Lab", false},
		{"198.51.100.2:8022", fingerprint.StatusTimeout, "ssh", "OpenSSH", "9.2p1", "comments", "Debian-2+deb12u3", false},
		{"198.51.100.3:7000", fingerprint.StatusSuccess, "redis", "Redis", "7.0.15", "redis_mode", "standalone", false},
		{"198.51.100.4:9999", fingerprint.StatusSuccess, "http", "nginx", "1.22.1", "title", "Lab", true},
		{"198.51.100.5:6379", fingerprint.StatusTimeout, "", "", "", "", "", false},
		{"198.51.100.6:4000", fingerprint.StatusSuccess, "banner", "", "", "", "", false},
		{"198.51.100.7:22", fingerprint.StatusRefused, "", "", "", "", "", false},
		// trickles forever: the deadline holds, and the bytes it sent are kept
		{"198.51.100.8:4100", fingerprint.StatusSuccess, "banner", "", "", "", "", false},
		{"198.51.100.9:443", fingerprint.StatusSuccess, "banner", "", "", "", "", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			start := time.Now()
			res := pool.Grab(context.Background(), fingerprint.Target{AddrPort: ap(tc.target)})
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v, past the 1.5 s deadline", el)
			}
			if res.Status != tc.status || res.Service != tc.service || res.Product != tc.product || res.Version != tc.version {
				t.Fatalf("got %s %q %q %q (%s), want %s %q %q %q", res.Status, res.Service, res.Product, res.Version, res.Error,
					tc.status, tc.service, tc.product, tc.version)
			}
			if tc.detail != "" && res.Details[tc.detail] != tc.want {
				t.Errorf("details %v, want %s=%q", res.Details, tc.detail, tc.want)
			}
			if leaf := res.TLS.Leaf(); (leaf != nil) != tc.tls || (leaf != nil && (leaf.Subject != "CN=unusual.example" || !leaf.SelfSigned)) {
				t.Errorf("TLS %+v, want TLS %v with the self-signed unusual.example certificate", res.TLS, tc.tls)
			}
			if res.Target != ap(tc.target) || res.Time.IsZero() {
				t.Errorf("envelope target %v time %v", res.Target, res.Time)
			}
			if tc.target == "198.51.100.6:4000" && string(res.Banner) != "WELCOME TO THE LAB CONTROLLER v2\r\n" {
				t.Errorf("banner %q", res.Banner)
			}
		})
	}
}

// TestPoolBounds checks the per-address cap and that every submitted
// target gets exactly one result.
func TestPoolBounds(t *testing.T) {
	var cur, peak atomic.Int32
	slow := server(t, func(c net.Conn) {
		time.Sleep(30 * time.Millisecond)
		httpServe(c)
	})
	routes := map[netip.AddrPort]string{}
	for p := range 20 {
		routes[netip.AddrPortFrom(netip.MustParseAddr("198.51.100.9"), uint16(80+p))] = slow
	}
	// count the connections open at once on the client side
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer(routes)(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return &countedConn{Conn: c, n: &cur}, nil
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dial,
		Workers: 16, PerAddr: 3, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := pool.Start(context.Background())
	var mu sync.Mutex
	got := map[netip.AddrPort]int{}
	for ap := range routes {
		b.Submit(fingerprint.Target{AddrPort: ap}, func(r fingerprint.Result) {
			mu.Lock()
			got[r.Target]++
			mu.Unlock()
			if r.Service != "http" {
				t.Errorf("%v: %s %q %s", r.Target, r.Status, r.Service, r.Error)
			}
		})
	}
	b.Wait()
	if len(got) != len(routes) {
		t.Fatalf("%d results for %d targets", len(got), len(routes))
	}
	for ap, n := range got {
		if n != 1 {
			t.Errorf("%v: %d results", ap, n)
		}
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrent connections to one address %d, want 2..3 (cap 3)", p)
	}
}

type countedConn struct {
	net.Conn
	n    *atomic.Int32
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// TestPoolCancel checks that cancelling the batch's context (a hard stop)
// ends grabs blocked in a read at once, not at their deadline, and that
// every target still gets its one result.
func TestPoolCancel(t *testing.T) {
	silent := server(t, func(c net.Conn) { time.Sleep(5 * time.Second) })
	routes := map[netip.AddrPort]string{}
	for p := range 8 {
		routes[netip.AddrPortFrom(netip.MustParseAddr("198.51.100.10"), uint16(4000+p))] = silent
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dialer(routes),
		PerAddr: 8, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := pool.Start(ctx)
	var n atomic.Int32
	for ap := range routes {
		b.Submit(fingerprint.Target{AddrPort: ap}, func(r fingerprint.Result) {
			n.Add(1)
			if r.Status != fingerprint.StatusTimeout {
				t.Errorf("%v: %s, want timeout", r.Target, r.Status)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cancel()
	b.Wait()
	if el := time.Since(start); el > time.Second {
		t.Errorf("Wait took %v after cancel", el)
	}
	if n.Load() != int32(len(routes)) {
		t.Errorf("%d results for %d targets", n.Load(), len(routes))
	}
}

// TestPoolOneConnectionForHTTPS: on a TLS port the probe's own session
// carries the HTTP request, so an HTTPS grab costs one connection and one
// handshake, not two.
func TestPoolOneConnectionForHTTPS(t *testing.T) {
	cert := selfSigned(t)
	var handshakes atomic.Int32
	https := server(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() == nil {
			handshakes.Add(1)
			httpServe(tc)
		}
	})
	ap := netip.MustParseAddrPort("198.51.100.11:443")
	var dials atomic.Int32
	base := dialer(map[netip.AddrPort]string{ap: https})
	dial := func(ctx context.Context, n, a string) (net.Conn, error) {
		dials.Add(1)
		return base(ctx, n, a)
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dial, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := pool.Grab(context.Background(), fingerprint.Target{AddrPort: ap})
	if res.Status != fingerprint.StatusSuccess || res.Product != "nginx" || res.TLS.Leaf() == nil {
		t.Fatalf("got %s %q %q TLS %v (%s)", res.Status, res.Service, res.Product, res.TLS, res.Error)
	}
	if d, h := dials.Load(), handshakes.Load(); d != 1 || h != 1 {
		t.Errorf("%d connections and %d handshakes, want 1 and 1", d, h)
	}
}
