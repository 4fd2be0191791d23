package vnc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

var target = fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:5900")}

// types is the 3.7/3.8 security message (RFC 6143 §7.1.2): a count, then
// the types.
func types(ts ...byte) []byte { return append([]byte{byte(len(ts))}, ts...) }

// failure is a security failure: zero (a count for 3.7/3.8, a U32 type
// for 3.3), then the reason string.
func failure(v33 bool, reason string) []byte {
	b := []byte{0}
	if v33 {
		b = []byte{0, 0, 0, 0}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(reason)))
	return append(b, reason...)
}

// server sends version, checks the client's reply is want, then sends sec.
func server(version, want string, sec []byte) func(testing.TB, net.Conn) {
	return func(t testing.TB, c net.Conn) {
		if _, err := io.WriteString(c, version); err != nil {
			return
		}
		got := make([]byte, versionLen)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Errorf("server: read version reply: %v", err)
			return
		}
		if string(got) != want {
			t.Errorf("server: client replied %q, want %q", got, want)
		}
		_, _ = c.Write(sec)
		_, _ = io.Copy(io.Discard, c)
	}
}

func TestGrab(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tests := []struct {
		name    string
		version string
		reply   string
		sec     []byte
		auth    fingerprint.Auth
		details map[string]string
	}{
		{"3.8 open", "RFB 003.008\n", "RFB 003.008\n", types(1), fingerprint.AuthNone,
			map[string]string{"version": "3.8", "security_types": "1"}},
		{"3.8 password or none", "RFB 003.008\n", "RFB 003.008\n", types(2, 1), fingerprint.AuthNone,
			map[string]string{"version": "3.8", "security_types": "2,1"}},
		{"3.8 password", "RFB 003.008\n", "RFB 003.008\n", types(2), fingerprint.AuthRequired,
			map[string]string{"version": "3.8", "security_types": "2"}},
		{"3.7 tight", "RFB 003.007\n", "RFB 003.007\n", types(2, 16), "",
			map[string]string{"version": "3.7", "security_types": "2,16"}},
		{"3.8 vencrypt", "RFB 003.008\n", "RFB 003.008\n", types(19), "",
			map[string]string{"version": "3.8", "security_types": "19"}},
		{"3.3 server picks vnc auth", "RFB 003.003\n", "RFB 003.003\n", u32(2), fingerprint.AuthRequired,
			map[string]string{"version": "3.3", "security_types": "2"}},
		{"3.3 server picks none", "RFB 003.003\n", "RFB 003.003\n", u32(1), fingerprint.AuthNone,
			map[string]string{"version": "3.3", "security_types": "1"}},
		{"3.5 treated as 3.3", "RFB 003.005\n", "RFB 003.003\n", u32(2), fingerprint.AuthRequired,
			map[string]string{"version": "3.5", "security_types": "2"}},
		{"apple 3.889", "RFB 003.889\n", "RFB 003.008\n", types(30, 2), fingerprint.AuthRequired,
			map[string]string{"version": "3.889", "security_types": "30,2"}},
		{"realvnc 4.1", "RFB 004.001\n", "RFB 003.008\n", types(1), fingerprint.AuthNone,
			map[string]string{"version": "4.1", "security_types": "1"}},
		{"3.8 refused", "RFB 003.008\n", "RFB 003.008\n", failure(false, "Too many security failures"), "",
			map[string]string{"version": "3.8", "reason": "Too many security failures"}},
		{"3.3 refused", "RFB 003.003\n", "RFB 003.003\n", failure(true, "Too many authentication failures"), "",
			map[string]string{"version": "3.3", "reason": "Too many authentication failures"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.RunTarget(t, New(), server(tc.version, tc.reply, tc.sec), 2*time.Second, target)
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			if res.Service != "vnc" || res.Product != "" || res.Auth != tc.auth {
				t.Errorf("service %q product %q auth %q, want vnc, none, %q", res.Service, res.Product, res.Auth, tc.auth)
			}
			if fmt.Sprint(res.Details) != fmt.Sprint(tc.details) {
				t.Errorf("details %v, want %v", res.Details, tc.details)
			}
			if want := tc.version + string(tc.sec); string(res.Banner) != want {
				t.Errorf("banner %q, want %q", res.Banner, want)
			}
		})
	}
}

// TestGrabPartial checks that a server which stops after its version is
// still reported as VNC, with the deadline's error.
func TestGrabPartial(t *testing.T) {
	server := grabtest.Script(grabtest.Send("RFB 003.008\n"))
	res, _, err := grabtest.RunTarget(t, New(), server, 300*time.Millisecond, target)
	if fingerprint.StatusOf(err) != fingerprint.StatusTimeout || res.Service != "vnc" || res.Details["version"] != "3.8" {
		t.Errorf("got %+v, %v; want vnc 3.8 and a timeout", res, err)
	}
}

func TestGreets(t *testing.T) {
	for in, want := range map[string]bool{
		"RFB 003.008\n": true,
		"RFB 003.8\n":   false,
		"RFB":           true,
		"SSH-2.0-x\r\n": false,
		"":              false,
	} {
		if got := New().Greets([]byte(in)); got != want {
			t.Errorf("Greets(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{
		Trickle:       "RFB 003.008\n",
		Flood:         "RFB 003.008\n",
		Limit:         64,
		Target:        target,
		Pass:          []string{"flood"},
		NotRecognised: []string{"junk"},
		Timeout:       []string{"silent", "trickle"},
		Check: func(t *testing.T, name string, res fingerprint.Result, err error) {
			switch name {
			case "close":
				if res.Service != "" {
					t.Errorf("got %+v, %v; want no service", res, err)
				}
			case "flood":
				// The repeated version line reads as 82 ('R') types.
				if res.Details["version"] != "3.8" || strings.Count(res.Details["security_types"], ",") != 81 {
					t.Errorf("got %+v, %v", res, err)
				}
			}
		},
	})
}

func TestReply(t *testing.T) {
	for _, tc := range []struct{ in, want Version }{
		{Version{3, 3}, Version{3, 3}}, {Version{3, 5}, Version{3, 3}}, {Version{3, 7}, Version{3, 7}},
		{Version{3, 8}, Version{3, 8}}, {Version{3, 889}, Version{3, 8}}, {Version{5, 0}, Version{3, 8}},
		{Version{2, 9}, Version{3, 3}},
	} {
		if got := Reply(tc.in); got != tc.want {
			t.Errorf("Reply(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	// The three versions of RFC 6143.
	f.Add([]byte("RFB 003.008\n"))
	f.Add([]byte("RFB 003.003\n"))
	// Apple's non-standard minor version.
	f.Add([]byte("RFB 003.889\n"))
	// A sign where a digit belongs.
	f.Add([]byte("RFB -03.008\n"))
	// Trailing security types after the version.
	f.Add([]byte("RFB 003.008\n\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVersion(b)
		if err != nil {
			return
		}
		// Round trip: the wire form of v is the message parsed.
		if w := v.Wire(); !bytes.Equal(w, b[:versionLen]) {
			t.Errorf("Wire() = %q, parsed from %q", w, b[:versionLen])
		}
	})
}

// encodeSecurity is the security message ParseSecurity reads as s.
func encodeSecurity(s Security, v Version) []byte {
	if v == (Version{3, 3}) {
		if len(s.Types) == 1 {
			return binary.BigEndian.AppendUint32(nil, s.Types[0])
		}
		return failure(true, s.Reason)
	}
	if len(s.Types) > 0 {
		b := []byte{byte(len(s.Types))}
		for _, t := range s.Types {
			b = append(b, byte(t))
		}
		return b
	}
	return failure(false, s.Reason)
}

func FuzzParseSecurity(f *testing.F) {
	// A list of two types (3.8).
	f.Add([]byte{2, 1, 2}, false)
	// A count of zero and a reason (3.8).
	f.Add(failure(false, "no"), false)
	// A reason longer than maxReason: read up to the cap.
	f.Add(append(binary.BigEndian.AppendUint32([]byte{0}, 1<<31), bytes.Repeat([]byte("x"), maxReason)...), false)
	// A count past the bytes at hand.
	f.Add([]byte{9, 1}, false)
	// A 3.3 chosen type.
	f.Add([]byte{0, 0, 0, 2}, true)
	// A 3.3 failure.
	f.Add(failure(true, "denied"), true)
	f.Fuzz(func(t *testing.T, b []byte, v33 bool) {
		v := Version{3, 8}
		if v33 {
			v = Version{3, 3}
		}
		s, err := ParseSecurity(b, v)
		if err != nil {
			return
		}
		if len(s.Reason) > maxReason || len(s.Types) > 255 || v33 && len(s.Types) > 1 {
			t.Errorf("unbounded result: %d types, %d reason bytes", len(s.Types), len(s.Reason))
		}
		if slices.Contains(s.Types, SecInvalid) && v33 {
			t.Errorf("3.3 type 0 taken as a type")
		}
		// Round trip through the canonical encoding.
		back, err := ParseSecurity(encodeSecurity(s, v), v)
		if err != nil || !slices.Equal(back.Types, s.Types) || back.Reason != s.Reason {
			t.Errorf("round trip of %+v gave %+v, %v", s, back, err)
		}
	})
}
