// Package web identifies HTTP/1.1 servers, and Elasticsearch and OpenSearch
// behind them, from one GET / request.
//
// The grabber sends "GET / HTTP/1.1" (RFC 9112 §3) with Host, User-Agent,
// Accept and "Connection: close", and parses the reply with net/http's
// response parser. It never follows redirects. It works the same on a plain
// connection and on a *tls.Conn the caller has already handshaken.
//
// Details keys:
//
//	status        status code ("200")
//	server        Server header, as sent
//	title         text of the first <title> element, trimmed, at most 256 bytes
//	location      Location header of a redirect (not followed)
//	content_type  Content-Type header
//	body_sha256   hex SHA-256 of the body bytes read (at most Target.Limit)
//	cluster_name  Elasticsearch/OpenSearch cluster name
//	security      Elasticsearch/OpenSearch: "off" when GET / answered without
//	              credentials, "on" when it demanded them (401)
//
// Service is "http", or "elasticsearch"/"opensearch" when the GET / JSON
// document or the 401 challenge says so. Auth is AuthRequired for any 401
// and AuthNone only for an Elasticsearch/OpenSearch node that answered
// GET / without credentials: a web page served without credentials says
// nothing about the application behind it.
package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/reachscan/reach/fingerprint"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// maxTitle is the most bytes of a page title kept, in bytes.
const maxTitle = 256

// Grabber is the HTTP/1.1 grabber. The zero value is ready to use.
type Grabber struct{}

// New returns an HTTP grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "http".
func (*Grabber) Name() string { return "http" }

// Ports returns the usual web ports, TLS and Elasticsearch ones included.
func (*Grabber) Ports() []uint16 {
	return []uint16{80, 8080, 8000, 8008, 8888, 443, 8443, 9200, 9201}
}

// Grab sends GET / on conn and describes the response. At most t.Limit()
// bytes are read from conn in all.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	stop, err := fingerprint.Bind(ctx, conn)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("http: set deadline: %w", err)
	}
	defer stop()

	if _, err := io.WriteString(conn, Request(t)); err != nil {
		return fingerprint.Result{}, fmt.Errorf("http: write request: %w", err)
	}

	limit := t.Limit()
	raw := &fingerprint.Recorder{R: io.LimitReader(conn, int64(limit)), Max: limit}
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		got := raw.Buf
		switch {
		case bytes.HasPrefix(got, []byte("HTTP/")):
			// An HTTP reply cut short (by the limit, the deadline or the
			// peer): the service is known, the rest is not.
			res := fingerprint.Result{Service: "http", Banner: headerBytes(got)}
			return res, fmt.Errorf("http: read response: %w", err)
		case len(got) == 0 || isNetErr(err):
			return fingerprint.Result{}, fmt.Errorf("http: read response: %w", err)
		}
		return fingerprint.Result{}, fmt.Errorf("http: read response: %w: %w", fingerprint.ErrNotRecognised, err)
	}
	defer resp.Body.Close()

	// The body shares the limit with the header: the reader below the
	// response never hands out more than limit bytes in all.
	body, bodyErr := io.ReadAll(resp.Body)
	if errors.Is(bodyErr, io.ErrUnexpectedEOF) {
		bodyErr = nil // cut short by the limit or the peer: keep what came
	}

	res := Describe(resp, body)
	res.Banner = headerBytes(raw.Buf)
	if bodyErr != nil {
		return res, fmt.Errorf("http: read body: %w", bodyErr)
	}
	return res, nil
}

// Request returns the GET / request sent to t. Host is t.Hostname, or the
// address, with the port unless it is 80 or 443 (RFC 9110 §7.2).
func Request(t fingerprint.Target) string {
	host := t.Hostname
	if host == "" {
		host = t.AddrPort.Addr().String()
		if t.AddrPort.Addr().Is6() {
			host = "[" + host + "]"
		}
	}
	if p := t.AddrPort.Port(); p != 80 && p != 443 && p != 0 {
		host += ":" + strconv.Itoa(int(p))
	}
	return "GET / HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"User-Agent: reach\r\n" +
		"Accept: */*\r\n" +
		"Connection: close\r\n\r\n"
}

// Describe fills a Result (without Banner) from a response and the body
// bytes read from it.
func Describe(resp *http.Response, body []byte) fingerprint.Result {
	sum := sha256.Sum256(body)
	res := fingerprint.Result{
		Service: "http",
		Details: map[string]string{
			"status":      strconv.Itoa(resp.StatusCode),
			"body_sha256": hex.EncodeToString(sum[:]),
		},
	}
	set := func(k, v string) {
		if v != "" {
			res.Details[k] = v
		}
	}
	server := resp.Header.Get("Server")
	set("server", server)
	set("location", resp.Header.Get("Location"))
	set("content_type", resp.Header.Get("Content-Type"))
	set("title", Title(body))
	res.Product, res.Version = ParseServer(server)
	if resp.StatusCode == http.StatusUnauthorized {
		res.Auth = fingerprint.AuthRequired
	}
	search(&res, resp, body)
	return res
}

// ParseServer splits the first product token of a Server header
// (RFC 9110 §10.2.4, "product/version") into product and version:
// "Apache/2.4.57 (Debian)" gives Apache and 2.4.57.
func ParseServer(s string) (product, version string) {
	tok, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	product, version, _ = strings.Cut(tok, "/")
	return product, version
}

// Title returns the trimmed text of the first <title> element in body, at
// most maxTitle bytes (cut at a UTF-8 boundary), or "".
func Title(body []byte) string {
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken:
			name, _ := z.TagName()
			if atom.Lookup(name) != atom.Title {
				continue
			}
			if z.Next() != html.TextToken {
				return ""
			}
			return strings.TrimSpace(truncate(strings.Join(strings.Fields(string(z.Text())), " "), maxTitle))
		}
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// searchRoot is the part of the GET / document of Elasticsearch and
// OpenSearch this package reads.
type searchRoot struct {
	Name        string `json:"name"`
	ClusterName string `json:"cluster_name"`
	Version     struct {
		Number       string `json:"number"`
		Distribution string `json:"distribution"`
		BuildFlavor  string `json:"build_flavor"`
	} `json:"version"`
	Tagline string `json:"tagline"`
}

// esTagline is the tagline of Elasticsearch's GET / document.
const esTagline = "You Know, for Search"

// search turns res into an Elasticsearch or OpenSearch result when the
// response says so: the GET / document on 200, the challenge on 401.
func search(res *fingerprint.Result, resp *http.Response, body []byte) {
	elasticHeader := strings.EqualFold(resp.Header.Get("X-Elastic-Product"), "Elasticsearch")
	switch resp.StatusCode {
	case http.StatusOK:
		var doc searchRoot
		if json.Unmarshal(body, &doc) != nil || doc.Version.Number == "" {
			return
		}
		switch {
		case doc.Version.Distribution == "opensearch":
			res.Service, res.Product = "opensearch", "OpenSearch"
		case doc.Version.Distribution == "" && (doc.Tagline == esTagline || elasticHeader):
			res.Service, res.Product = "elasticsearch", "Elasticsearch"
		default:
			return
		}
		res.Version = doc.Version.Number
		res.Auth = fingerprint.AuthNone
		res.Details["security"] = "off"
		if doc.ClusterName != "" {
			res.Details["cluster_name"] = doc.ClusterName
		}
	case http.StatusUnauthorized:
		realm := basicRealm(resp.Header.Values("Www-Authenticate"))
		switch {
		case elasticHeader || realm == "security":
			res.Service, res.Product = "elasticsearch", "Elasticsearch"
		case realm == "OpenSearch Security" || realm == "Open Distro Security":
			res.Service, res.Product = "opensearch", "OpenSearch"
		default:
			return
		}
		res.Version = ""
		res.Details["security"] = "on"
	}
}

// basicRealm returns the realm of the first Basic challenge (RFC 7617 §2)
// among WWW-Authenticate values, or "".
func basicRealm(values []string) string {
	for _, v := range values {
		scheme, params, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Basic") {
			continue
		}
		i := strings.Index(strings.ToLower(params), "realm=")
		if i < 0 {
			continue
		}
		r := params[i+len("realm="):]
		if strings.HasPrefix(r, `"`) {
			r, _, _ = strings.Cut(r[1:], `"`)
		} else {
			r, _, _ = strings.Cut(r, ",")
		}
		return r
	}
	return ""
}

// headerBytes returns the status line and headers at the start of raw: up
// to and including the blank line, or all of raw when it has none.
func headerBytes(raw []byte) []byte {
	end := len(raw)
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	return bytes.Clone(raw[:end])
}

// isNetErr reports whether err came from the connection rather than from
// the bytes on it: a timeout, a reset or a close.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
