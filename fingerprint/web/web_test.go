package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

var target = fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:8080")}

// response builds an HTTP/1.1 response (RFC 9112 §4, §6) with a
// Content-Length header.
func response(status string, headers []string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\n", status)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// reply returns a server that reads one request, checks it, sends raw and
// closes.
func reply(raw []byte) func(testing.TB, net.Conn) {
	return func(t testing.TB, c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			t.Errorf("server: read request: %v", err)
			return
		}
		if req.Method != "GET" || req.RequestURI != "/" || req.Host != "198.18.0.7:8080" ||
			req.UserAgent() != "reach" || req.Header.Get("Accept") != "*/*" || !req.Close {
			t.Errorf("server: unexpected request %s %s host %q ua %q accept %q close %v",
				req.Method, req.RequestURI, req.Host, req.UserAgent(), req.Header.Get("Accept"), req.Close)
		}
		_, _ = c.Write(raw)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestGrab(t *testing.T) {
	nginx := readFile(t, "nginx-index.html")
	es := readFile(t, "elasticsearch-8.json")
	os2 := readFile(t, "opensearch-2.json")
	es401 := readFile(t, "elasticsearch-401.json")
	moved := []byte("<html><head><title>301 Moved Permanently</title></head></html>")
	long := []byte("<title>" + strings.Repeat("é", 200) + "</title>") // 400 bytes of title text
	chunked := "HTTP/1.1 200 OK\r\nServer: Caddy\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"7\r\n<title>\r\n" + "9\r\n Chunked \r\n" + "8\r\n</title>\r\n" + "0\r\n\r\n"
	untilClose := "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n\r\n<title>Directory listing for /</title>"

	tests := []struct {
		name    string
		raw     []byte
		service string
		product string
		version string
		auth    fingerprint.Auth
		details map[string]string // exact Details
	}{
		{
			name:    "nginx page",
			raw:     response("200 OK", []string{"Server: nginx/1.22.1", "Content-Type: text/html"}, nginx),
			service: "http", product: "nginx", version: "1.22.1",
			details: map[string]string{"status": "200", "server": "nginx/1.22.1", "content_type": "text/html",
				"title": "Welcome to nginx!", "body_sha256": sha(nginx)},
		},
		{
			name: "apache redirect, not followed",
			raw: response("301 Moved Permanently", []string{"Server: Apache/2.4.57 (Debian)",
				"Location: https://www.example.test/"}, moved),
			service: "http", product: "Apache", version: "2.4.57",
			details: map[string]string{"status": "301", "server": "Apache/2.4.57 (Debian)",
				"location": "https://www.example.test/", "title": "301 Moved Permanently", "body_sha256": sha(moved)},
		},
		{
			name:    "chunked body (RFC 9112 §7.1)",
			raw:     []byte(chunked),
			service: "http", product: "Caddy",
			details: map[string]string{"status": "200", "server": "Caddy", "title": "Chunked",
				"body_sha256": sha([]byte("<title> Chunked </title>"))},
		},
		{
			name:    "HTTP/1.0 body until close",
			raw:     []byte(untilClose),
			service: "http", product: "SimpleHTTP", version: "0.6",
			details: map[string]string{"status": "200", "server": "SimpleHTTP/0.6 Python/3.11.2",
				"title": "Directory listing for /", "body_sha256": sha([]byte("<title>Directory listing for /</title>"))},
		},
		{
			name:    "long title cut at a rune boundary",
			raw:     response("200 OK", nil, long),
			service: "http",
			details: map[string]string{"status": "200", "title": strings.Repeat("é", 128), "body_sha256": sha(long)},
		},
		{
			name: "elasticsearch open",
			raw: response("200 OK", []string{"X-elastic-product: Elasticsearch",
				"content-type: application/json"}, es),
			service: "elasticsearch", product: "Elasticsearch", version: "8.11.3", auth: fingerprint.AuthNone,
			details: map[string]string{"status": "200", "content_type": "application/json", "body_sha256": sha(es),
				"cluster_name": "docker-cluster", "security": "off"},
		},
		{
			name:    "opensearch open",
			raw:     response("200 OK", []string{"content-type: application/json; charset=UTF-8"}, os2),
			service: "opensearch", product: "OpenSearch", version: "2.11.1", auth: fingerprint.AuthNone,
			details: map[string]string{"status": "200", "content_type": "application/json; charset=UTF-8",
				"body_sha256": sha(os2), "cluster_name": "opensearch-cluster", "security": "off"},
		},
		{
			name: "elasticsearch security on, by realm",
			raw: response("401 Unauthorized", []string{`WWW-Authenticate: Basic realm="security" charset="UTF-8"`,
				"WWW-Authenticate: ApiKey", "content-type: application/json"}, es401),
			service: "elasticsearch", product: "Elasticsearch", auth: fingerprint.AuthRequired,
			details: map[string]string{"status": "401", "content_type": "application/json",
				"body_sha256": sha(es401), "security": "on"},
		},
		{
			name: "elasticsearch security on, by product header",
			raw: response("401 Unauthorized", []string{"WWW-Authenticate: Bearer",
				"X-elastic-product: Elasticsearch"}, nil),
			service: "elasticsearch", product: "Elasticsearch", auth: fingerprint.AuthRequired,
			details: map[string]string{"status": "401", "body_sha256": sha(nil), "security": "on"},
		},
		{
			name:    "opensearch security on",
			raw:     response("401 Unauthorized", []string{`WWW-Authenticate: Basic realm="OpenSearch Security"`}, []byte("Unauthorized")),
			service: "opensearch", product: "OpenSearch", auth: fingerprint.AuthRequired,
			details: map[string]string{"status": "401", "body_sha256": sha([]byte("Unauthorized")), "security": "on"},
		},
		{
			name: "other basic auth stays http",
			raw: response("401 Unauthorized", []string{"Server: nginx/1.24.0",
				`WWW-Authenticate: Basic realm="Restricted"`}, nil),
			service: "http", product: "nginx", version: "1.24.0", auth: fingerprint.AuthRequired,
			details: map[string]string{"status": "401", "server": "nginx/1.24.0", "body_sha256": sha(nil)},
		},
		{
			name:    "json with a version but no tagline stays http",
			raw:     response("200 OK", nil, []byte(`{"version":{"number":"1.0"}}`)),
			service: "http",
			details: map[string]string{"status": "200", "body_sha256": sha([]byte(`{"version":{"number":"1.0"}}`))},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.RunTarget(t, New(), reply(tc.raw), 2*time.Second, target)
			if err != nil {
				t.Fatalf("Grab: %v", err)
			}
			if res.Service != tc.service || res.Product != tc.product || res.Version != tc.version || res.Auth != tc.auth {
				t.Errorf("got service %q product %q version %q auth %q, want %q %q %q %q",
					res.Service, res.Product, res.Version, res.Auth, tc.service, tc.product, tc.version, tc.auth)
			}
			if fmt.Sprint(res.Details) != fmt.Sprint(tc.details) {
				t.Errorf("details\n got %v\nwant %v", res.Details, tc.details)
			}
			head, _, _ := bytes.Cut(tc.raw, []byte("\r\n\r\n"))
			if want := string(head) + "\r\n\r\n"; string(res.Banner) != want {
				t.Errorf("banner %q, want %q", res.Banner, want)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	tests := []struct {
		t    fingerprint.Target
		host string
	}{
		{fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:80")}, "198.18.0.7"},
		{fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:443")}, "198.18.0.7"},
		{fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:9200")}, "198.18.0.7:9200"},
		{fingerprint.Target{AddrPort: netip.MustParseAddrPort("[2001:db8::1]:8443")}, "[2001:db8::1]:8443"},
		{fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.18.0.7:443"), Hostname: "www.example.test"}, "www.example.test"},
	}
	for _, tc := range tests {
		want := "GET / HTTP/1.1\r\nHost: " + tc.host + "\r\nUser-Agent: reach\r\nAccept: */*\r\nConnection: close\r\n\r\n"
		if got := Request(tc.t); got != want {
			t.Errorf("Request(%v) = %q, want %q", tc.t.AddrPort, got, want)
		}
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct{ in, product, version string }{
		{"nginx/1.22.1", "nginx", "1.22.1"},
		{"Apache/2.4.57 (Debian)", "Apache", "2.4.57"},
		{"Microsoft-IIS/10.0", "Microsoft-IIS", "10.0"},
		{"cloudflare", "cloudflare", ""},
		{" lighttpd/1.4.69 ", "lighttpd", "1.4.69"},
		{"", "", ""},
	}
	for _, tc := range tests {
		p, v := ParseServer(tc.in)
		if p != tc.product || v != tc.version {
			t.Errorf("ParseServer(%q) = %q, %q; want %q, %q", tc.in, p, v, tc.product, tc.version)
		}
	}
}

// TestBodyLimit checks that a body longer than the limit is read, hashed
// and kept only up to the limit.
func TestBodyLimit(t *testing.T) {
	const limit = 4096
	head := "HTTP/1.1 200 OK\r\nServer: flood\r\n\r\n"
	flood := func(_ testing.TB, c net.Conn) {
		go func() { _, _ = io.Copy(io.Discard, c) }()
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
	tg := target
	tg.MaxBanner = limit
	res, _, err := grabtest.RunTarget(t, New(), flood, 2*time.Second, tg)
	if err != nil {
		t.Fatalf("Grab: %v", err)
	}
	if string(res.Banner) != head {
		t.Errorf("banner %q, want %q", res.Banner, head)
	}
	if want := sha(bytes.Repeat([]byte("A"), limit-len(head))); res.Details["body_sha256"] != want {
		t.Errorf("body_sha256 %s, want the hash of the %d body bytes within the limit", res.Details["body_sha256"], limit-len(head))
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{
		Prefix:        "HTTP/1.1 200 OK\r\n",
		Trickle:       "H",
		Flood:         "HTTP/1.1 200 OK\r\nX: ",
		Target:        target,
		NotRecognised: []string{"junk"},
		Timeout:       []string{"silent"},
	})
}

func FuzzParseResponse(f *testing.F) {
	// A plain page with a server token and a title.
	f.Add(response("200 OK", []string{"Server: nginx/1.22.1"}, []byte("<title> a  b </title>")))
	// Elasticsearch's GET / document.
	f.Add(response("200 OK", nil, []byte(`{"cluster_name":"c","version":{"number":"8.1.0"},"tagline":"You Know, for Search"}`)))
	// OpenSearch's, told apart by version.distribution.
	f.Add(response("200 OK", nil, []byte(`{"version":{"distribution":"opensearch","number":"2.0.0"}}`)))
	// The Elasticsearch security challenge.
	f.Add(response("401 Unauthorized", []string{`WWW-Authenticate: Basic realm="security"`}, nil))
	// A challenge without quotes and a second parameter.
	f.Add(response("401 Unauthorized", []string{`WWW-Authenticate: basic REALM=OpenSearch Security, charset=x`}, nil))
	// A chunked body with a title split across chunks.
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<ti\r\n5\r\ntle>x\r\n0\r\n\r\n"))
	// A title of multi-byte runes past the cut.
	f.Add(response("200 OK", nil, []byte("<title>"+strings.Repeat("\u20ac", 100)+"</title>")))
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		res := Describe(resp, body)
		if res.Details["body_sha256"] != sha(body) {
			t.Errorf("body_sha256 %q is not the hash of the body", res.Details["body_sha256"])
		}
		if len(res.Details["title"]) > maxTitle {
			t.Errorf("title of %d bytes", len(res.Details["title"]))
		}
		switch res.Service {
		case "http":
			if server := strings.TrimSpace(resp.Header.Get("Server")); !strings.HasPrefix(server, res.Product) {
				t.Errorf("product %q is not a prefix of server %q", res.Product, server)
			}
			if res.Details["security"] != "" {
				t.Errorf("http result with security %q", res.Details["security"])
			}
		case "elasticsearch", "opensearch":
			sec := res.Details["security"]
			if !(sec == "off" && res.Auth == fingerprint.AuthNone || sec == "on" && res.Auth == fingerprint.AuthRequired) {
				t.Errorf("security %q with auth %q", sec, res.Auth)
			}
		default:
			t.Errorf("service %q", res.Service)
		}
	})
}

func FuzzTitle(f *testing.F) {
	// A plain title with surrounding space.
	f.Add([]byte("<html><head><title>\n  Home page \t</title>"))
	// An upper-case tag with attributes and entities.
	f.Add([]byte(`<TITLE lang="en">A &amp; B</TITLE>`))
	// No closing tag: the text runs to the end.
	f.Add([]byte("<title>unterminated"))
	// A long title of multi-byte runes.
	f.Add([]byte("<title>" + strings.Repeat("日本", 100) + "</title>"))
	// Markup inside the title is text, not tags (RCDATA).
	f.Add([]byte("<title><b>x</b></title>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got := Title(body)
		if len(got) > maxTitle {
			t.Errorf("title of %d bytes", len(got))
		}
		if got != strings.TrimSpace(got) || strings.ContainsAny(got, "\n\t\r") {
			t.Errorf("title %q not trimmed and folded", got)
		}
		if utf8.Valid(body) && !utf8.ValidString(got) {
			t.Errorf("title %q of valid UTF-8 input is not valid UTF-8", got)
		}
		if got != "" && !bytes.Contains(bytes.ToLower(body), []byte("<title")) {
			t.Errorf("title %q from a body with no title tag", got)
		}
	})
}
