// Package postgres identifies PostgreSQL servers by the frontend/backend
// protocol 3.0 (PostgreSQL documentation, chapter "Frontend/Backend
// Protocol", sections "Message Flow" and "Message Formats").
//
// The grabber sends SSLRequest. A server that answers 'S' is upgraded to TLS
// (offering ALPN "postgresql", which PostgreSQL 17 requires when ALPN is
// sent); one that answers 'N' stays in plain text. It then sends a
// StartupMessage for user "postgres" and database "postgres" (the
// superuser and database every installation starts with, so a server that
// trusts the network answers with its version) and reads the reply:
// an authentication request (credentials required), AuthenticationOk (no
// credentials: Auth none) followed by ParameterStatus messages, or an
// ErrorResponse. Version comes only from the server_version parameter, which
// a server sends after authentication succeeds.
//
// Details keys:
//
//	ssl              "yes" or "no": the answer to SSLRequest
//	auth_method      "trust", "cleartext", "md5", "sasl", "kerberos5", "gss", "sspi" or "code N"
//	sasl_mechanisms  the SASL mechanisms offered, comma-separated ("SCRAM-SHA-256")
//	error_code       SQLSTATE of an ErrorResponse ("28000")
//	error_message    the message of an ErrorResponse
//	server_version   the full server_version parameter ("16.2 (Debian 16.2-1)")
package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// Protocol constants from "Message Formats".
const (
	sslRequestCode = 80877103 // SSLRequest: 1234 in the high 16 bits, 5679 in the low
	protocol30     = 196608   // StartupMessage protocol version 3.0: 3 << 16
	// maxMessages is the most backend messages read after StartupMessage;
	// a server sends about 15 (ParameterStatus, BackendKeyData, ReadyForQuery).
	maxMessages = 64
)

// Grabber identifies PostgreSQL; it is safe for concurrent use.
type Grabber struct{}

// New returns a PostgreSQL grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "postgresql".
func (*Grabber) Name() string { return "postgresql" }

// Ports returns the IANA-registered port 5432.
func (*Grabber) Ports() []uint16 { return []uint16{5432} }

// sslRequest is the SSLRequest message: Int32 length 8, Int32 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// startupMessage returns a StartupMessage for protocol 3.0 with the given
// parameters, in order, each a name and a value.
func startupMessage(params ...string) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], protocol30)
	for _, p := range params {
		b = append(b, p...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// Grab speaks to a PostgreSQL server on conn.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("postgres: set deadline: %w", err)
		}
	}
	limit := t.Limit()
	if _, err := conn.Write(sslRequest); err != nil {
		return fingerprint.Result{}, fmt.Errorf("postgres: send ssl request: %w", err)
	}
	// A server answers SSLRequest with exactly one byte and then waits, so
	// a read that returns more than one byte is some other protocol.
	var ans [16]byte
	n, err := conn.Read(ans[:])
	if n == 0 {
		return fingerprint.Result{}, fmt.Errorf("postgres: read ssl answer: %w", err)
	}
	res := fingerprint.Result{Service: "postgresql", Product: "PostgreSQL", Details: map[string]string{}}
	switch {
	case n == 1 && ans[0] == 'N':
		res.Details["ssl"] = "no"
	case n == 1 && ans[0] == 'S':
		res.Details["ssl"] = "yes"
		tc, info, err := fingerprint.HandshakeALPN(ctx, conn, t.Hostname, []string{"postgresql"})
		if err != nil {
			return res, fmt.Errorf("postgres: %w", err)
		}
		res.TLS = info
		conn = tc
	case ans[0] == 'E':
		// Only a server older than SSL support answers with an error.
		r := bufio.NewReader(io.MultiReader(strings.NewReader(string(ans[1:n])), conn))
		body, err := readErrorBody(r, limit)
		if err != nil {
			return fingerprint.Result{}, fmt.Errorf("postgres: read ssl error: %w", err)
		}
		res.Banner = append([]byte{'E'}, body...)
		applyError(&res, body, false)
		return res, nil
	default:
		return fingerprint.Result{}, fmt.Errorf("postgres: ssl answer %q: %w", ans[:n], fingerprint.ErrNotRecognised)
	}

	if _, err := conn.Write(startupMessage("user", "postgres", "database", "postgres")); err != nil {
		return res, fmt.Errorf("postgres: send startup: %w", err)
	}
	rec := &fingerprint.Recorder{R: conn, Max: limit}
	r := bufio.NewReader(rec)
	// A server that completed a TLS handshake after SSLRequest is
	// PostgreSQL whatever it says next.
	st := state{seen: res.TLS != nil}
	for range maxMessages {
		if b, err := r.Peek(1); err == nil && !st.seen && !strings.ContainsRune("ENRv", rune(b[0])) {
			return fingerprint.Result{}, fmt.Errorf("postgres: startup reply type %q: %w", b[0], fingerprint.ErrNotRecognised)
		}
		typ, body, err := readMessage(r, limit)
		res.Banner = rec.Buf
		if err != nil {
			if st.seen {
				return res, fmt.Errorf("postgres: read startup reply: %w", err)
			}
			return fingerprint.Result{}, fmt.Errorf("postgres: read startup reply: %w", err)
		}
		done, err := st.apply(&res, typ, body)
		if err != nil {
			if st.seen {
				return res, fmt.Errorf("postgres: startup reply: %w", err)
			}
			return fingerprint.Result{}, fmt.Errorf("postgres: startup reply: %w", err)
		}
		if done {
			return res, nil
		}
	}
	if !st.seen {
		return fingerprint.Result{}, fmt.Errorf("postgres: %d messages without authentication: %w", maxMessages, fingerprint.ErrNotRecognised)
	}
	return res, nil
}

var errTooLong = errors.New("message longer than the banner limit")

// readMessage reads one backend message: Byte1 type, Int32 length counting
// itself, body. A body longer than max bytes is an error, so a hostile
// length costs nothing. An 'E' whose length is not plausible is a protocol
// 2 error (type, then a NUL-terminated text), which old servers send to a
// 3.0 StartupMessage; it is returned as a body with one 'M' field.
func readMessage(r *bufio.Reader, max int) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	if typ == 'E' {
		body, err := readErrorBody(r, max)
		return typ, body, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int64(binary.BigEndian.Uint32(hdr[:])) - 4
	if n < 0 {
		return 0, nil, fmt.Errorf("message %q with length %d", typ, n+4)
	}
	if n > int64(max) {
		return 0, nil, fmt.Errorf("message %q of %d bytes: %w", typ, n, errTooLong)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// readErrorBody reads an ErrorResponse after its type byte. A protocol 3.0
// body is a list of fields (Byte1 code, String value) ended by a zero byte;
// a protocol 2 error is text up to a NUL, turned into one 'M' field.
func readErrorBody(r *bufio.Reader, max int) ([]byte, error) {
	hdr, err := r.Peek(4)
	if err != nil && len(hdr) == 0 {
		return nil, err
	}
	if len(hdr) == 4 {
		n := int64(binary.BigEndian.Uint32(hdr)) - 4
		if n >= 1 && n <= int64(max) {
			if _, err := r.Discard(4); err != nil {
				return nil, err
			}
			body := make([]byte, n)
			_, err := io.ReadFull(r, body)
			return body, err
		}
	}
	text := []byte{'M'}
	for len(text)+2 < max {
		c, err := r.ReadByte()
		if err != nil || c == 0 {
			break
		}
		text = append(text, c)
	}
	return append(text, 0, 0), nil
}

// state follows the startup reply across messages.
type state struct {
	seen   bool // a recognised message was read
	authOK bool // AuthenticationOk was read
}

// apply folds one backend message into res and reports whether the startup
// reply is complete. An unknown message type before any recognised message
// means the peer is not PostgreSQL.
func (s *state) apply(res *fingerprint.Result, typ byte, body []byte) (bool, error) {
	switch typ {
	case 'R': // Authentication*: Int32 code, then code-specific data
		if len(body) < 4 {
			return false, fmt.Errorf("authentication message of %d bytes", len(body))
		}
		s.seen = true
		code := binary.BigEndian.Uint32(body)
		if code == 0 {
			s.authOK = true
			res.Auth = fingerprint.AuthNone
			res.Details["auth_method"] = "trust"
			return false, nil
		}
		res.Auth = fingerprint.AuthRequired
		res.Details["auth_method"] = authMethod(code)
		if code == 10 { // AuthenticationSASL: mechanism names, each a String, then a zero byte
			var mechs []string
			for rest := body[4:]; len(rest) > 0 && rest[0] != 0; {
				m, r, ok := cstring(rest)
				if !ok {
					break
				}
				mechs, rest = append(mechs, m), r
			}
			if len(mechs) > 0 {
				res.Details["sasl_mechanisms"] = strings.Join(mechs, ",")
			}
		}
		return true, nil
	case 'E':
		s.seen = true
		applyError(res, body, s.authOK)
		return true, nil
	case 'S': // ParameterStatus: String name, String value
		if !s.seen {
			break
		}
		name, rest, ok := cstring(body)
		if !ok {
			return false, nil
		}
		if val, _, ok := cstring(rest); ok && name == "server_version" {
			res.Details["server_version"] = val
			res.Version, _, _ = strings.Cut(val, " ")
		}
		return false, nil
	case 'Z': // ReadyForQuery
		if s.seen {
			return true, nil
		}
	case 'K', 'N', 'v': // BackendKeyData, NoticeResponse, NegotiateProtocolVersion
		if s.seen || typ != 'K' {
			return false, nil
		}
	}
	if !s.seen {
		return false, fmt.Errorf("message type %q: %w", typ, fingerprint.ErrNotRecognised)
	}
	return false, nil
}

// authMethod names an Authentication request code ("Message Formats").
func authMethod(code uint32) string {
	switch code {
	case 2:
		return "kerberos5"
	case 3:
		return "cleartext"
	case 5:
		return "md5"
	case 7:
		return "gss"
	case 9:
		return "sspi"
	case 10:
		return "sasl"
	}
	return fmt.Sprintf("code %d", code)
}

// applyError records an ErrorResponse body ("Error and Notice Message
// Fields": C is the SQLSTATE, M the message). Before authentication
// succeeded, SQLSTATE class 28 (invalid authorization specification: no
// pg_hba.conf entry, bad password) means credentials are required.
func applyError(res *fingerprint.Result, body []byte, authOK bool) {
	for rest := body; len(rest) > 1 && rest[0] != 0; {
		code := rest[0]
		val, r, ok := cstring(rest[1:])
		if !ok {
			break
		}
		rest = r
		switch code {
		case 'C':
			res.Details["error_code"] = val
		case 'M':
			res.Details["error_message"] = val
		}
	}
	if !authOK && strings.HasPrefix(res.Details["error_code"], "28") {
		res.Auth = fingerprint.AuthRequired
	}
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
