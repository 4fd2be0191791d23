package telnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

var target = fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:23")}

// step is one exchange of a scripted server: it sends send, then expects
// the client to answer exactly want.
type step struct {
	send string
	want string
}

// script plays steps, then waits for the client to hang up.
func script(steps ...step) func(testing.TB, net.Conn) {
	return func(t testing.TB, c net.Conn) {
		for _, s := range steps {
			if _, err := io.WriteString(c, s.send); err != nil {
				t.Errorf("server: write: %v", err)
				return
			}
			if s.want == "" {
				continue
			}
			got := make([]byte, len(s.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Errorf("server: read answer: %v", err)
				return
			}
			if string(got) != s.want {
				t.Errorf("server: client answered % x, want % x", got, s.want)
			}
		}
		_, _ = io.Copy(io.Discard, c)
	}
}

// Negotiations (RFC 854) as sent by Linux telnetd (inetutils): options
// TERMINAL-TYPE 24 (RFC 1091), TERMINAL-SPEED 32 (RFC 1079), X-DISPLAY 35
// (RFC 1096), NEW-ENVIRON 39 (RFC 1572), ECHO 1 (RFC 857), SGA 3
// (RFC 858), STATUS 5 (RFC 859), NAWS 31 (RFC 1073), LFLOW 33 (RFC 1372).
const (
	linuxFirst  = "\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"
	linuxFirstA = "\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27"
	linuxSecond = "\xff\xfb\x03\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x05\xff\xfd\x21"
	linuxSecA   = "\xff\xfe\x03\xff\xfc\x01\xff\xfc\x1f\xff\xfe\x05\xff\xfc\x21"
)

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		auth    fingerprint.Auth
		banner  string
		details map[string]string
	}{
		{
			name: "linux telnetd",
			steps: []step{
				{linuxFirst, linuxFirstA},
				{linuxSecond, linuxSecA},
				{"\r\nDebian GNU/Linux 12\r\nhost login: ", ""},
			},
			auth: fingerprint.AuthRequired, banner: "\nDebian GNU/Linux 12\nhost login: ",
			details: map[string]string{"prompt": "host login:", "do": "24,32,35,39,1,31,33", "will": "3,5"},
		},
		{
			name: "busybox open shell",
			steps: []step{
				{"\xff\xfb\x01\xff\xfb\x03\r\n\r\nBusyBox v1.31.1 built-in shell (ash)\r\n\r\n# ", "\xff\xfe\x01\xff\xfe\x03"},
			},
			auth: fingerprint.AuthNone, banner: "\n\nBusyBox v1.31.1 built-in shell (ash)\n\n# ",
			details: map[string]string{"prompt": "#", "will": "1,3"},
		},
		{
			name:  "no negotiation, login prompt",
			steps: []step{{"\r\n\r\nUser Access Verification\r\n\r\nUsername: ", ""}},
			auth:  fingerprint.AuthRequired, banner: "\n\nUser Access Verification\n\nUsername: ",
			details: map[string]string{"prompt": "Username:"},
		},
		{
			name: "subnegotiation, escaped IAC and a repeated request",
			steps: []step{
				// DO TTYPE twice: answered once (RFC 854 loop rule).
				{"\xff\xfd\x18\xff\xfd\x18", "\xff\xfc\x18"},
				// SB TTYPE SEND IAC SE (RFC 1091), IAC IAC, NOP, then text.
				{"\xff\xfa\x18\x01\xff\xf0\xff\xffa\xff\xf1b\r\x00Password: ", ""},
			},
			auth: fingerprint.AuthRequired, banner: "abPassword: ",
			details: map[string]string{"prompt": "abPassword:", "do": "24"},
		},
		{
			name: "menu prompt after a login banner is not an open shell",
			steps: []step{
				{"\xff\xfb\x01Last login: Mon\r\nconsole> ", "\xff\xfe\x01"},
			},
			auth: "", banner: "Last login: Mon\nconsole> ",
			details: map[string]string{"prompt": "console>", "will": "1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.RunTarget(t, New(), script(tc.steps...), 3*time.Second, target)
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			if res.Service != "telnet" || res.Auth != tc.auth {
				t.Errorf("service %q auth %q, want telnet %q", res.Service, res.Auth, tc.auth)
			}
			if string(res.Banner) != tc.banner {
				t.Errorf("banner %q, want %q", res.Banner, tc.banner)
			}
			if fmt.Sprint(res.Details) != fmt.Sprint(tc.details) {
				t.Errorf("details %v, want %v", res.Details, tc.details)
			}
		})
	}
}

// TestGrabNegotiationOnly checks that a server which negotiates and then
// stays silent is reported as Telnet, with the deadline's error.
func TestGrabNegotiationOnly(t *testing.T) {
	res, _, err := grabtest.RunTarget(t, New(), script(step{"\xff\xfd\x18", "\xff\xfc\x18"}), 300*time.Millisecond, target)
	if res.Service != "telnet" || res.Details["do"] != "24" || fingerprint.StatusOf(err) != fingerprint.StatusTimeout {
		t.Errorf("got %+v, %v; want telnet with DO 24 and a timeout", res, err)
	}
}

// TestGrabPlainText checks that text with neither negotiation nor a login
// prompt is left to another grabber.
func TestGrabPlainText(t *testing.T) {
	res, _, err := grabtest.RunTarget(t, New(), script(step{"220 ftp.example.test FTP server ready\r\n", ""}), 2*time.Second, target)
	if !errors.Is(err, fingerprint.ErrNotRecognised) || res.Service != "" {
		t.Errorf("got %+v, %v; want ErrNotRecognised", res, err)
	}
}

func TestGreets(t *testing.T) {
	for in, want := range map[string]bool{
		"\xff\xfd\x18": true,
		"\xff\xfb\x01": true,
		"\xff":         true,
		"\xff\xf1":     false,
		"login: ":      false,
		"":             false,
	} {
		if got := New().Greets([]byte(in)); got != want {
			t.Errorf("Greets(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{
		Trickle:       "\xff\xfd\x18",
		Flood:         "\xff\xfb\x01welcome ",
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
				if res.Service != "telnet" || res.Details["will"] != "1" || len(res.Banner) == 0 {
					t.Errorf("got %+v, %v", res, err)
				}
			}
		},
	})
}

func FuzzDecode(f *testing.F) {
	// Linux telnetd's first negotiation.
	f.Add([]byte(linuxFirst), 5)
	// A subnegotiation split across reads.
	f.Add([]byte("\xff\xfa\x18\x01\xff\xf0login: "), 3)
	// An escaped IAC inside a subnegotiation, and CR NUL.
	f.Add([]byte("\xff\xfa\x18\xff\xff\xff\xf0a\r\x00b"), 4)
	// A verb at the very end of a read.
	f.Add([]byte("\xff\xfd"), 1)
	// IAC followed by a byte that is not a command.
	f.Add([]byte("\xff\x13text"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		var whole Decoder
		text, reply := whole.Feed(in, nil, nil)
		// Splitting the input between two reads changes nothing.
		if split < 0 {
			split = -split
		}
		split %= len(in) + 1
		var parts Decoder
		t1, r1 := parts.Feed(in[:split], nil, nil)
		t1, r1 = parts.Feed(in[split:], t1, r1)
		if !bytes.Equal(text, t1) || !bytes.Equal(reply, r1) {
			t.Errorf("split at %d: text %q reply % x, whole: %q % x", split, t1, r1, text, reply)
		}
		if len(text) > len(in) {
			t.Errorf("%d bytes of text from %d", len(text), len(in))
		}
		for _, c := range text {
			if c != '\n' && c != '\t' && (c < 0x20 || c >= 0x7f) {
				t.Fatalf("unprintable %#x in text %q", c, text)
			}
		}
		// Replies are refusals, three bytes each, each option once per verb.
		if len(reply)%3 != 0 {
			t.Fatalf("reply % x is not whole commands", reply)
		}
		seen := map[[2]byte]bool{}
		for i := 0; i < len(reply); i += 3 {
			k := [2]byte{reply[i+1], reply[i+2]}
			if reply[i] != IAC || (k[0] != WONT && k[0] != DONT) || seen[k] {
				t.Fatalf("reply % x", reply)
			}
			seen[k] = true
		}
		if p := Prompt(text); len(p) > maxPrompt || !utf8.ValidString(p) || strings.Contains(p, "\n") {
			t.Errorf("prompt %q", p)
		}
	})
}
