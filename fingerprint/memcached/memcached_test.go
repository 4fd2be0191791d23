package memcached

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// stats is a reply to "stats" as protocol.txt describes it, shortened.
const stats = "STAT pid 1\r\nSTAT uptime 3600\r\nSTAT time 1717000000\r\nSTAT version 1.6.21\r\n" +
	"STAT curr_connections 2\r\nSTAT curr_items 1234\r\nSTAT total_items 5678\r\nEND\r\n"

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		steps   []grabtest.Step
		want    fingerprint.Result
		wantErr error
	}{
		{
			name: "open",
			steps: []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("VERSION 1.6.21\r\n"),
				grabtest.Expect("stats\r\n"), grabtest.Send(stats)},
			want: fingerprint.Result{Version: "1.6.21", Auth: fingerprint.AuthNone, Details: map[string]string{"curr_items": "1234"}},
		},
		{
			name: "stats refused",
			steps: []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("VERSION 1.4.25 Ubuntu\r\n"),
				grabtest.Expect("stats\r\n"), grabtest.Send("ERROR\r\n")},
			want: fingerprint.Result{Version: "1.4.25 Ubuntu", Auth: fingerprint.AuthNone, Details: map[string]string{}},
		},
		{
			// the grab ends at the error line, well before the 2 s deadline
			name: "stats error",
			steps: []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("VERSION 1.6.21\r\n"),
				grabtest.Expect("stats\r\n"), grabtest.Send("SERVER_ERROR out of memory\r\n")},
			want: fingerprint.Result{Version: "1.6.21", Auth: fingerprint.AuthNone, Details: map[string]string{}},
		},
		{
			name:  "auth file",
			steps: []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("CLIENT_ERROR unauthenticated\r\n")},
			want:  fingerprint.Result{Auth: fingerprint.AuthRequired, Details: map[string]string{"error": "CLIENT_ERROR unauthenticated"}},
		},
		{
			name:    "redis",
			steps:   []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("-ERR unknown command 'version'\r\n")},
			wantErr: fingerprint.ErrNotRecognised,
		},
		{
			name:    "bare error",
			steps:   []grabtest.Step{grabtest.Expect("version\r\n"), grabtest.Send("ERROR\r\n")},
			wantErr: fingerprint.ErrNotRecognised,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, took, err := grabtest.Run(t, New(), grabtest.Script(tc.steps...), 2*time.Second, 0)
			if took > time.Second {
				t.Errorf("took %v: the grab waited for the deadline", took)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || res.Service != "" {
					t.Fatalf("got %+v, %v; want %v", res, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "memcached" || res.Product != "memcached" || res.Version != tc.want.Version || res.Auth != tc.want.Auth {
				t.Errorf("got %q %q %q auth %q, want memcached %q auth %q", res.Service, res.Product, res.Version, res.Auth, tc.want.Version, tc.want.Auth)
			}
			if len(res.Details) != len(tc.want.Details) {
				t.Errorf("details %q, want %q", res.Details, tc.want.Details)
			}
			for k, v := range tc.want.Details {
				if res.Details[k] != v {
					t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
				}
			}
		})
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "VERSION "})
}

// FuzzParseVersion checks that the version is copied from the input, has
// no line break, and that every accepted reply sets Auth.
func FuzzParseVersion(f *testing.F) {
	f.Add([]byte("VERSION 1.6.21\r\n"))               // plain version
	f.Add([]byte("VERSION \r\n"))                     // empty version
	f.Add([]byte("CLIENT_ERROR unauthenticated\r\n")) // auth file
	f.Add([]byte("VERSION 1.6\r\nSTAT pid 1\r\n"))    // more after the line
	f.Add([]byte("VERSION"))                          // no space, no CRLF
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseVersion(data)
		if err != nil {
			return
		}
		if !bytes.Contains(data, []byte(res.Version)) || bytes.ContainsAny([]byte(res.Version), "\r\n") {
			t.Errorf("version %q", res.Version)
		}
		if res.Auth == "" {
			t.Errorf("accepted %q without an auth verdict", data)
		}
	})
}

// FuzzParseStats checks that every name and value is copied from the input
// and holds no line break or (for names) space.
func FuzzParseStats(f *testing.F) {
	f.Add([]byte(stats))                          // full reply
	f.Add([]byte("STAT a\r\nSTAT  b\r\nEND\r\n")) // no value, empty name
	f.Add([]byte("END\r\nSTAT after end\r\n"))    // lines after END are ignored
	f.Fuzz(func(t *testing.T, data []byte) {
		for k, v := range ParseStats(data) {
			if !bytes.Contains(data, []byte(k+" "+v)) || bytes.ContainsAny([]byte(k), " \r\n") || bytes.ContainsAny([]byte(v), "\n") {
				t.Errorf("stat %q = %q", k, v)
			}
		}
	})
}
