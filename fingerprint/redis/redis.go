// Package redis identifies Redis and Valkey servers by sending INFO server
// as a RESP array (Redis serialization protocol specification, "Sending
// commands to a Redis server") and reading the reply.
//
// A bulk string reply is the INFO text ("field:value" lines, "# Section"
// headers): the server answered without credentials, so Auth is none. An
// error reply mentioning authentication (NOAUTH, or a requirepass-era
// "-ERR operation not permitted"), an ACL refusal (NOPERM) or DENIED
// (protected mode) means credentials are required.
//
// Details keys:
//
//	redis_mode  "standalone", "cluster" or "sentinel"
//	os          the host operating system as reported ("Linux 6.1.0-18-amd64 x86_64")
//	error       an error reply, without its leading '-'
package redis

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// infoServer is INFO server as a RESP array of two bulk strings.
const infoServer = "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"

// Grabber identifies Redis and Valkey; it is safe for concurrent use.
type Grabber struct{}

// New returns a Redis grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "redis".
func (*Grabber) Name() string { return "redis" }

// Ports returns the IANA-registered port 6379.
func (*Grabber) Ports() []uint16 { return []uint16{6379} }

// Grab sends INFO server on conn and reads the reply.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("redis: set deadline: %w", err)
		}
	}
	if _, err := conn.Write([]byte(infoServer)); err != nil {
		return fingerprint.Result{}, fmt.Errorf("redis: send info: %w", err)
	}
	buf := make([]byte, t.Limit())
	reply, err := fingerprint.ReadUntil(ctx, conn, buf, complete)
	if len(reply) == 0 || (!complete(reply) && len(reply) < len(buf)) {
		if len(reply) > 0 && !strings.ContainsRune("$-+:*", rune(reply[0])) {
			return fingerprint.Result{}, fmt.Errorf("redis: reply %q: %w", reply[:min(len(reply), 16)], fingerprint.ErrNotRecognised)
		}
		return fingerprint.Result{}, fmt.Errorf("redis: read info reply: %w", err)
	}
	res, err := Parse(reply)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("redis: %w", err)
	}
	res.Banner = reply
	return res, nil
}

// complete reports whether b holds a whole reply: a first line ending in
// CRLF and, for a bulk string "$N", N bytes and CRLF after it.
func complete(b []byte) bool {
	line, rest, ok := bytes.Cut(b, []byte("\r\n"))
	if !ok {
		return false
	}
	if len(line) == 0 || line[0] != '$' {
		return true
	}
	n, err := strconv.Atoi(string(line[1:]))
	return err != nil || n < 0 || len(rest) >= n+2
}

// Parse interprets a reply to INFO server; a bulk string cut short (the
// banner limit) is parsed as far as it goes. Every string it returns is
// copied from reply.
func Parse(reply []byte) (fingerprint.Result, error) {
	line, rest, ok := bytes.Cut(reply, []byte("\r\n"))
	if !ok || len(line) == 0 {
		return fingerprint.Result{}, fmt.Errorf("reply without a first line: %w", fingerprint.ErrNotRecognised)
	}
	res := fingerprint.Result{Service: "redis", Product: "Redis", Details: map[string]string{}}
	switch line[0] {
	case '-':
		msg := string(line[1:])
		code, _, _ := strings.Cut(msg, " ")
		if code == "" || strings.ToUpper(code) != code {
			return fingerprint.Result{}, fmt.Errorf("error reply %q: %w", line, fingerprint.ErrNotRecognised)
		}
		res.Details["error"] = msg
		low := strings.ToLower(msg)
		if code == "NOAUTH" || code == "NOPERM" || code == "DENIED" || code == "WRONGPASS" ||
			strings.Contains(low, "auth") || strings.Contains(low, "not permitted") {
			res.Auth = fingerprint.AuthRequired
		}
		return res, nil
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 {
			return fingerprint.Result{}, fmt.Errorf("bulk length %q: %w", line[1:], fingerprint.ErrNotRecognised)
		}
		body := rest[:min(n, len(rest))]
		info := parseInfo(body)
		if info["redis_version"] == "" && info["valkey_version"] == "" {
			return fingerprint.Result{}, fmt.Errorf("info without a version: %w", fingerprint.ErrNotRecognised)
		}
		res.Auth = fingerprint.AuthNone
		res.Version = info["redis_version"]
		if v := info["valkey_version"]; v != "" || info["server_name"] == "valkey" {
			res.Product, res.Version = "Valkey", v
		}
		for _, k := range []string{"redis_mode", "os"} {
			if v := info[k]; v != "" {
				res.Details[k] = v
			}
		}
		return res, nil
	}
	return fingerprint.Result{}, fmt.Errorf("reply %q: %w", line[:min(len(line), 16)], fingerprint.ErrNotRecognised)
}

// parseInfo splits INFO text into its "field:value" lines, skipping blank
// lines and "# Section" headers.
func parseInfo(b []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}
