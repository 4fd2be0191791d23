package rdp

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

var target = fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:3389")}

// Connection Confirm fixtures laid out as in [MS-RDPBCGR] §4.1.2: TPKT
// header, X.224 CC TPDU (LI, 0xd0, DST-REF, SRC-REF 0x1234, class), then
// RDP_NEG_RSP or RDP_NEG_FAILURE.
var (
	// RDP_NEG_RSP, flags EXTENDED_CLIENT_DATA|DYNVC_GFX, PROTOCOL_HYBRID.
	ccHybrid = []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
		0x02, 0x03, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00}
	// RDP_NEG_RSP, flags 0x1f, PROTOCOL_HYBRID_EX.
	ccHybridEx = []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
		0x02, 0x1f, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00}
	// RDP_NEG_RSP, no flags, PROTOCOL_SSL.
	ccSSL = []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
		0x02, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00}
	// RDP_NEG_FAILURE, SSL_NOT_ALLOWED_BY_SERVER.
	ccFailure = []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
		0x03, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00}
	// No negotiation data: a server that speaks standard RDP security only.
	ccPlain = []byte{0x03, 0x00, 0x00, 0x0b, 0x06, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00}
)

// server reads the Connection Request, checks it, answers cc and, when cfg
// is not nil, runs a TLS server with it.
func server(cc []byte, cfg *tls.Config) func(testing.TB, net.Conn) {
	return func(t testing.TB, c net.Conn) {
		req := make([]byte, 19)
		if _, err := io.ReadFull(c, req); err != nil {
			t.Errorf("server: read request: %v", err)
			return
		}
		// The request's requestedProtocols ([MS-RDPBCGR] §2.2.1.1.1).
		if req[11] != typeNegReq || binary.LittleEndian.Uint32(req[15:]) != ProtocolSSL|ProtocolHybrid|ProtocolHybridEx {
			t.Errorf("server: request % x", req)
		}
		if _, err := c.Write(cc); err != nil {
			return
		}
		if cfg == nil {
			_, _ = io.Copy(io.Discard, c)
			return
		}
		sc := tls.Server(c, cfg)
		if err := sc.Handshake(); err != nil {
			t.Errorf("server: tls handshake: %v", err)
		}
		_, _ = io.Copy(io.Discard, sc)
	}
}

func TestGrab(t *testing.T) {
	cfg := grabtest.ServerTLSConfig(t)
	der := cfg.Certificates[0].Certificate[0]
	tests := []struct {
		name    string
		cc      []byte
		tls     bool
		auth    fingerprint.Auth
		details map[string]string
	}{
		{"hybrid (NLA)", ccHybrid, true, fingerprint.AuthRequired,
			map[string]string{"selected_protocol": "hybrid", "flags": "extended_client_data,dynvc_gfx"}},
		{"hybrid_ex", ccHybridEx, true, fingerprint.AuthRequired,
			map[string]string{"selected_protocol": "hybrid_ex", "flags": "extended_client_data,dynvc_gfx,reserved,restricted_admin,redirected_auth"}},
		{"tls", ccSSL, true, "", map[string]string{"selected_protocol": "ssl"}},
		{"negotiation failure", ccFailure, false, "", map[string]string{"neg_failure": "ssl_not_allowed_by_server"}},
		{"standard rdp security", ccPlain, false, "", map[string]string{"selected_protocol": "rdp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *tls.Config
			if tc.tls {
				c = cfg
			}
			res, _, err := grabtest.RunTarget(t, New(), server(tc.cc, c), 3*time.Second, target)
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			if res.Service != "rdp" || res.Product != "" || res.Auth != tc.auth {
				t.Errorf("service %q product %q auth %q, want rdp, none, %q", res.Service, res.Product, res.Auth, tc.auth)
			}
			if fmt.Sprint(res.Details) != fmt.Sprint(tc.details) {
				t.Errorf("details %v, want %v", res.Details, tc.details)
			}
			if !bytes.Equal(res.Banner, tc.cc) {
				t.Errorf("banner % x, want % x", res.Banner, tc.cc)
			}
			if !tc.tls {
				if res.TLS != nil {
					t.Errorf("TLS %+v without TLS", res.TLS)
				}
				return
			}
			leaf := res.TLS.Leaf()
			if leaf == nil || leaf.Subject != "CN=reach.test" || !leaf.SelfSigned {
				t.Fatalf("leaf %+v, want the self-signed CN=reach.test", leaf)
			}
			if want := fingerprint.Describe(mustParse(t, der), time.Now()).SHA256; leaf.SHA256 != want {
				t.Errorf("leaf SHA256 %s, want %s", leaf.SHA256, want)
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequest(t *testing.T) {
	r := Request()
	if len(r) != int(binary.BigEndian.Uint16(r[2:])) || int(r[4]) != len(r)-5 || r[5] != 0xe0 {
		t.Errorf("request % x: TPKT length or X.224 length indicator wrong", r)
	}
	Request()[0] = 0xff // a caller changing its copy changes nothing
	if Request()[0] != 3 {
		t.Error("Request shares its bytes")
	}
}

func TestParseConfirm(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Confirm
		ok   bool
	}{
		{"hybrid", ccHybrid, Confirm{Negotiated: true, Flags: 3, Selected: ProtocolHybrid}, true},
		{"failure", ccFailure, Confirm{Negotiated: true, Failed: true, Failure: 2}, true},
		{"no negotiation", ccPlain, Confirm{}, true},
		{"cut short", ccHybrid[:12], Confirm{}, false},
		{"TPKT version 2", append([]byte{2}, ccHybrid[1:]...), Confirm{}, false},
		{"a connection request, not a confirm", Request(), Confirm{}, false},
		{"length indicator past the TPDU", append(append([]byte{}, ccPlain[:4]...), append([]byte{0x40}, ccPlain[5:]...)...), Confirm{}, false},
		{"negotiation length 9", append(append([]byte{}, ccSSL[:13]...), append([]byte{9}, ccSSL[14:]...)...), Confirm{}, false},
		{"unknown negotiation type", append(append([]byte{}, ccSSL[:11]...), append([]byte{7}, ccSSL[12:]...)...), Confirm{}, false},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), Confirm{}, false},
	}
	for _, tc := range tests {
		got, err := ParseConfirm(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestNames(t *testing.T) {
	if got := ProtocolName(0x20); got != "0x20" {
		t.Errorf("ProtocolName(0x20) = %q", got)
	}
	if got := FailureName(5); got != "hybrid_required_by_server" {
		t.Errorf("FailureName(5) = %q", got)
	}
	if got := FailureName(99); got != "99" {
		t.Errorf("FailureName(99) = %q", got)
	}
	if got := FlagNames(0x88); got != "restricted_admin,bit7" {
		t.Errorf("FlagNames(0x88) = %q", got)
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{
		Trickle:       "\x03",
		Flood:         "\x03\x00\xff\xff",
		Target:        target,
		NotRecognised: []string{"junk", "flood"},
		Timeout:       []string{"silent", "trickle"},
		Check: func(t *testing.T, name string, res fingerprint.Result, err error) {
			if res.Service != "" {
				t.Errorf("got %+v, %v; want no service", res, err)
			}
		},
	})
}

// encode builds the Connection Confirm that ParseConfirm reads as c.
func encode(c Confirm) []byte {
	b := []byte{0x03, 0x00, 0x00, 0x0b, 0x06, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00}
	if !c.Negotiated {
		return b
	}
	typ, v := byte(typeNegRsp), c.Selected
	if c.Failed {
		typ, v = typeNegFailure, c.Failure
	}
	b = append(b, typ, c.Flags, 0x08, 0x00)
	b = binary.LittleEndian.AppendUint32(b, v)
	b[3], b[4] = byte(len(b)), byte(len(b)-5)
	return b
}

func FuzzParseConfirm(f *testing.F) {
	// Each documented shape: NEG_RSP, NEG_FAILURE, no negotiation.
	f.Add(ccHybrid)
	f.Add(ccFailure)
	f.Add(ccPlain)
	// A TPKT length past the bytes at hand.
	f.Add([]byte{0x03, 0x00, 0xff, 0xff, 0x0e, 0xd0})
	// A length indicator shorter than the fixed header.
	f.Add([]byte{0x03, 0x00, 0x00, 0x0b, 0x01, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00})
	// Negotiation data cut to fewer than 8 bytes.
	f.Add(append([]byte{0x03, 0x00, 0x00, 0x0f}, ccHybrid[4:15]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfirm(b)
		if err != nil {
			return
		}
		if c.Failed && (c.Flags != 0 || c.Selected != 0) || !c.Negotiated && c != (Confirm{}) {
			t.Errorf("inconsistent %+v", c)
		}
		// Round trip: the canonical encoding of c parses back to c.
		if back, err := ParseConfirm(encode(c)); err != nil || back != c {
			t.Errorf("round trip of %+v gave %+v, %v", c, back, err)
		}
	})
}

// TestGrabTLSFails checks that a server which selects TLS and then hangs up
// is still identified, without a TLS description.
func TestGrabTLSFails(t *testing.T) {
	hangUp := func(_ testing.TB, c net.Conn) {
		_, _ = io.ReadFull(c, make([]byte, 19))
		_, _ = c.Write(ccSSL)
	}
	res, _, err := grabtest.RunTarget(t, New(), hangUp, 2*time.Second, target)
	if err != nil || res.Service != "rdp" || res.Details["selected_protocol"] != "ssl" || res.TLS != nil {
		t.Errorf("got %+v, %v; want rdp, ssl and no TLS", res, err)
	}
}
