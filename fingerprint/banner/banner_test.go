package banner

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

func TestGrab(t *testing.T) {
	tests := []struct {
		name     string
		server   func(testing.TB, net.Conn)
		limit    int
		want     string
		prompted bool
	}{
		{
			name:   "unprompted",
			server: grabtest.Script(grabtest.Send("RFB 003.008\n")),
			want:   "RFB 003.008\n",
		},
		{
			name:   "in pieces",
			server: grabtest.Script(grabtest.Send("Welcome "), grabtest.Send("to the "), grabtest.Send("machine\r\n")),
			want:   "Welcome to the machine\r\n",
		},
		{
			name:     "prompted",
			server:   grabtest.Script(grabtest.Expect("\r\n"), grabtest.Send("ERROR unknown command\r\n")),
			want:     "ERROR unknown command\r\n",
			prompted: true,
		},
		{
			name:   "limit",
			server: grabtest.Script(grabtest.Send(strings.Repeat("x", 100))),
			limit:  10,
			want:   strings.Repeat("x", 10),
		},
		{
			// a pause longer than Quiet ends the banner
			name: "pause",
			server: grabtest.Script(grabtest.Send("first\r\n"), func(*grabtest.Server) error {
				time.Sleep(300 * time.Millisecond)
				return nil
			}, grabtest.Send("second\r\n")),
			want: "first\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &Grabber{PromptAfter: 100 * time.Millisecond, Quiet: 100 * time.Millisecond}
			res, _, err := grabtest.Run(t, g, tc.server, 2*time.Second, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "banner" || res.Product != "" || string(res.Banner) != tc.want || (res.Details["prompted"] == "yes") != tc.prompted {
				t.Errorf("got %+v, want banner %q prompted %v", res, tc.want, tc.prompted)
			}
		})
	}
}

func TestNothing(t *testing.T) {
	for name, server := range map[string]func(testing.TB, net.Conn){
		"silent": grabtest.Script(grabtest.Expect("\r\n")),
		"closes": func(testing.TB, net.Conn) {},
	} {
		res, took, err := grabtest.Run(t, New(), server, 300*time.Millisecond, 0)
		if !errors.Is(err, fingerprint.ErrNotRecognised) || res.Service != "" || took > 2*time.Second {
			t.Errorf("%s: got %+v, %v after %v", name, res, err, took)
		}
		if fingerprint.StatusOf(err) != fingerprint.StatusNoBanner {
			t.Errorf("%s: status %q, want no-banner", name, fingerprint.StatusOf(err))
		}
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{AcceptsAnything: true})
}

// FuzzGrab sends data and closes; the banner must be exactly the first
// limit bytes of data, whatever they are.
func FuzzGrab(f *testing.F) {
	f.Add([]byte("SSH-2.0-OpenSSH_9.2p1\r\n"), uint8(255)) // a typical greeting, under the limit
	f.Add([]byte("\x00\xff\x00\xff binary"), uint8(3))     // binary, cut by the limit
	f.Add(bytes.Repeat([]byte("A"), 5000), uint8(0))       // longer than any limit here
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		if len(data) == 0 {
			return
		}
		lim := int(limit) + 1
		g := &Grabber{PromptAfter: time.Second, Quiet: time.Second}
		send := func(_ testing.TB, c net.Conn) { c.Write(data) } // then Run closes the pipe
		res, _, err := grabtest.Run(t, g, send, 5*time.Second, lim)
		if err != nil {
			t.Fatal(err)
		}
		if want := data[:min(len(data), lim)]; !bytes.Equal(res.Banner, want) {
			t.Errorf("banner %q, want %q", res.Banner, want)
		}
	})
}
