package web

import (
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
	"slices"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// selfSigned returns a self-signed certificate for www.example.test and
// 198.18.0.7, valid from notBefore to notAfter, and its DER encoding.
func selfSigned(t *testing.T, notBefore, notAfter time.Time, isCA bool) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "www.example.test", Organization: []string{"Reach Test"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              []string{"www.example.test", "example.test"},
		IPAddresses:           []net.IP{net.ParseIP("198.18.0.7")},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}

// overTLS grabs with Grabber on the *tls.Conn returned by
// fingerprint.Handshake, as the pool does on TLS ports, and keeps the
// handshake's description.
type overTLS struct {
	*Grabber
	hostname string
	info     *fingerprint.TLSInfo
}

func (g *overTLS) Grab(ctx context.Context, c net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	tc, info, err := fingerprint.Handshake(ctx, c, g.hostname)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("handshake: %w", err)
	}
	g.info = info
	return g.Grabber.Grab(ctx, tc, t)
}

// TestGrabOverTLS runs the grabber on the *tls.Conn returned by
// fingerprint.Handshake, as the pool does on TLS ports, and checks the
// certificate summary.
func TestGrabOverTLS(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name       string
		from, to   time.Time
		isCA       bool
		expired    bool
		selfSigned bool
	}{
		{"valid self-signed CA", now.Add(-time.Hour), now.Add(24 * time.Hour), true, false, true},
		// Most self-signed server certificates are not CAs: they must
		// still count as self-signed.
		{"valid self-signed leaf", now.Add(-time.Hour), now.Add(24 * time.Hour), false, false, true},
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, der := selfSigned(t, tc.from, tc.to, tc.isCA)
			raw := response("200 OK", []string{"Server: nginx/1.22.1"}, []byte("<title>secure</title>"))
			serve := reply(raw)
			server := func(t testing.TB, c net.Conn) {
				sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
				if err := sc.Handshake(); err != nil {
					t.Errorf("server handshake: %v", err)
					return
				}
				serve(t, sc)
				_ = sc.Close()
			}
			g := &overTLS{Grabber: New(), hostname: "www.example.test"}
			res, _, err := grabtest.RunTarget(t, g, server, 3*time.Second, fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:8080")})
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			info := g.info
			if res.Product != "nginx" || res.Version != "1.22.1" || res.Details["title"] != "secure" {
				t.Errorf("got product %q version %q title %q over TLS", res.Product, res.Version, res.Details["title"])
			}
			if info.Version != "TLS 1.3" || info.ALPN != "http/1.1" {
				t.Errorf("version %q alpn %q, want TLS 1.3 and http/1.1", info.Version, info.ALPN)
			}
			leaf := info.Leaf()
			if leaf == nil {
				t.Fatal("no leaf certificate")
			}
			if want := "CN=www.example.test,O=Reach Test"; leaf.Subject != want || leaf.Issuer != want {
				t.Errorf("subject %q issuer %q, want %q", leaf.Subject, leaf.Issuer, want)
			}
			if want := []string{"www.example.test", "example.test", "198.18.0.7"}; !slices.Equal(leaf.SANs, want) {
				t.Errorf("SANs %q, want %q", leaf.SANs, want)
			}
			if leaf.SHA256 != sha(der) {
				t.Errorf("SHA256 %s, want %s", leaf.SHA256, sha(der))
			}
			if leaf.SelfSigned != tc.selfSigned || leaf.Expired != tc.expired {
				t.Errorf("self-signed %v expired %v, want %v %v", leaf.SelfSigned, leaf.Expired, tc.selfSigned, tc.expired)
			}
			if !leaf.NotAfter.Equal(tc.to.UTC().Truncate(time.Second)) {
				t.Errorf("not after %v, want %v", leaf.NotAfter, tc.to.UTC().Truncate(time.Second))
			}
		})
	}
}
