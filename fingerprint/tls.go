package fingerprint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"time"
)

// Handshake runs a TLS client handshake on conn within ctx and describes the
// session. It accepts any certificate (the point is to record it, not to
// trust it) and offers TLS 1.0 to 1.3 with ALPN h2 and http/1.1. The
// hostname, when set, is sent as SNI. On error the *tls.Conn is nil.
func Handshake(ctx context.Context, conn net.Conn, hostname string) (*tls.Conn, *TLSInfo, error) {
	return HandshakeALPN(ctx, conn, hostname, []string{"h2", "http/1.1"})
}

// HandshakeALPN is Handshake offering the ALPN protocol IDs alpn instead of
// h2 and http/1.1, and no ALPN extension at all when alpn is empty. Upgrades
// of other protocols need it: servers that guard against cross-protocol
// attacks (RFC 7301 §3.2; PostgreSQL 17, nginx mail) abort a handshake that
// offers only protocols they do not speak.
func HandshakeALPN(ctx context.Context, conn net.Conn, hostname string, alpn []string) (*tls.Conn, *TLSInfo, error) {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // recording, not trusting; see Handshake
		MinVersion:         tls.VersionTLS10,
		ServerName:         hostname,
		NextProtos:         alpn,
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	info := &TLSInfo{
		Version: tls.VersionName(st.Version),
		Cipher:  tls.CipherSuiteName(st.CipherSuite),
		ALPN:    st.NegotiatedProtocol,
	}
	now := time.Now()
	for _, c := range st.PeerCertificates {
		info.Chain = append(info.Chain, Describe(c, now))
	}
	return tc, info, nil
}

// Describe summarises one certificate as of now.
func Describe(c *x509.Certificate, now time.Time) Certificate {
	sum := sha256.Sum256(c.Raw)
	d := Certificate{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		SHA256:    hex.EncodeToString(sum[:]),
		Expired:   now.After(c.NotAfter),
	}
	d.SANs = append(d.SANs, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		d.SANs = append(d.SANs, ip.String())
	}
	// Self-signed: issuer equals subject and the certificate's own key
	// verifies its signature. CheckSignature, not CheckSignatureFrom: the
	// latter also demands a CA certificate, and most self-signed server
	// certificates are not one.
	if bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
		d.SelfSigned = true
	}
	return d
}

// Leaf returns the first certificate of the chain, or nil.
func (t *TLSInfo) Leaf() *Certificate {
	if t == nil || len(t.Chain) == 0 {
		return nil
	}
	return &t.Chain[0]
}
