package redis

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// bulk wraps s as a RESP bulk string: "$" length CRLF data CRLF.
func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

func fixture(t testing.TB, name string) string {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		limit   int
		want    fingerprint.Result
		wantErr error
	}{
		{
			name: "redis 7", reply: bulk(fixture(t, "info_redis7.txt")),
			want: fingerprint.Result{Product: "Redis", Version: "7.2.4", Auth: fingerprint.AuthNone,
				Details: map[string]string{"redis_mode": "standalone", "os": "Linux 6.1.0-18-amd64 x86_64"}},
		},
		{
			name: "valkey 8", reply: bulk(fixture(t, "info_valkey8.txt")),
			want: fingerprint.Result{Product: "Valkey", Version: "8.0.1", Auth: fingerprint.AuthNone,
				Details: map[string]string{"redis_mode": "cluster", "os": "Linux 6.8.0-31-generic aarch64"}},
		},
		{
			// the limit cuts the bulk string; the version line comes first
			name: "cut by limit", reply: bulk(fixture(t, "info_redis7.txt")), limit: 64,
			want: fingerprint.Result{Product: "Redis", Version: "7.2.4", Auth: fingerprint.AuthNone, Details: map[string]string{}},
		},
		{
			name: "noauth", reply: "-NOAUTH Authentication required.\r\n",
			want: fingerprint.Result{Product: "Redis", Auth: fingerprint.AuthRequired, Details: map[string]string{"error": "NOAUTH Authentication required."}},
		},
		{
			name: "requirepass, redis 2", reply: "-ERR operation not permitted\r\n",
			want: fingerprint.Result{Product: "Redis", Auth: fingerprint.AuthRequired, Details: map[string]string{"error": "ERR operation not permitted"}},
		},
		{
			name: "acl", reply: "-NOPERM User default has no permissions to run the 'info' command\r\n",
			want: fingerprint.Result{Product: "Redis", Auth: fingerprint.AuthRequired, Details: map[string]string{"error": "NOPERM User default has no permissions to run the 'info' command"}},
		},
		{
			name: "protected mode", reply: "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.\r\n",
			want: fingerprint.Result{Product: "Redis", Auth: fingerprint.AuthRequired, Details: map[string]string{"error": "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user."}},
		},
		{
			name: "other error", reply: "-ERR unknown command 'INFO'\r\n",
			want: fingerprint.Result{Product: "Redis", Details: map[string]string{"error": "ERR unknown command 'INFO'"}},
		},
		{name: "http", reply: "HTTP/1.1 400 Bad Request\r\n\r\n", wantErr: fingerprint.ErrNotRecognised},
		{name: "pop3 error", reply: "-ERR Unknown command.\r\n", wantErr: nil, want: fingerprint.Result{Product: "Redis", Details: map[string]string{"error": "ERR Unknown command."}}},
		{name: "pop3 greeting", reply: "+OK Dovecot ready.\r\n", wantErr: fingerprint.ErrNotRecognised},
		{name: "bulk without info", reply: bulk("hello"), wantErr: fingerprint.ErrNotRecognised},
		{name: "lowercase error", reply: "-err what\r\n", wantErr: fingerprint.ErrNotRecognised},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.Run(t, New(), grabtest.Script(grabtest.Expect(infoServer), grabtest.Send(tc.reply)), 2*time.Second, tc.limit)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || res.Service != "" {
					t.Fatalf("got %+v, %v; want %v", res, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "redis" || res.Product != tc.want.Product || res.Version != tc.want.Version || res.Auth != tc.want.Auth {
				t.Errorf("got %q %q %q auth %q, want redis %q %q auth %q", res.Service, res.Product, res.Version, res.Auth,
					tc.want.Product, tc.want.Version, tc.want.Auth)
			}
			if len(res.Details) != len(tc.want.Details) {
				t.Errorf("details %q, want %q", res.Details, tc.want.Details)
			}
			for k, v := range tc.want.Details {
				if res.Details[k] != v {
					t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
				}
			}
			if !strings.HasPrefix(tc.reply, string(res.Banner)) || len(res.Banner) == 0 || (tc.limit > 0 && len(res.Banner) > tc.limit) {
				t.Errorf("banner %q is not a prefix of the reply within the limit", res.Banner)
			}
		})
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "$100000\r\n"})
}

// FuzzParse checks that Parse never panics, that the strings it reports
// are copied from the input, and that Auth none comes only with a version.
func FuzzParse(f *testing.F) {
	f.Add([]byte(bulk("# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n"))) // INFO reply
	f.Add([]byte(bulk("valkey_version:8.0.1\r\nserver_name:valkey\r\n")))               // Valkey fields
	f.Add([]byte("$50\r\nredis_version:6.0"))                                           // bulk cut short
	f.Add([]byte("-NOAUTH Authentication required.\r\n"))                               // error reply
	f.Add([]byte("$-1\r\n"))                                                            // null bulk string
	f.Add([]byte("$99999999999999999999\r\n"))                                          // length overflow
	f.Add([]byte("-\r\n"))                                                              // empty error
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		if err != nil {
			if res.Service != "" {
				t.Errorf("service %q with error", res.Service)
			}
			return
		}
		for _, v := range []string{res.Version, res.Details["os"], res.Details["redis_mode"], res.Details["error"]} {
			if !bytes.Contains(data, []byte(v)) {
				t.Errorf("%q is not in the input", v)
			}
		}
		if res.Auth == fingerprint.AuthNone && res.Version == "" && res.Product == "Redis" {
			t.Errorf("auth none without a version: %+v", res)
		}
	})
}
