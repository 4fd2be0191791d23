package postgres

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// msg builds a backend message ("Message Formats"): Byte1 type, Int32
// length counting itself, then the body.
func msg(typ byte, body ...string) string {
	b := []byte{typ, 0, 0, 0, 0}
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return string(b)
}

func i32(v uint32) string { return string(binary.BigEndian.AppendUint32(nil, v)) }

var startup = string(startupMessage("user", "postgres", "database", "postgres"))

func expectBytes(want string) grabtest.Step {
	return grabtest.ExpectN(len(want), func(t testing.TB, b []byte) {
		if string(b) != want {
			t.Errorf("client sent %q, want %q", b, want)
		}
	})
}

var (
	authOK      = msg('R', i32(0))
	authSASL    = msg('R', i32(10), "SCRAM-SHA-256\x00", "SCRAM-SHA-256-PLUS\x00", "\x00")
	authMD5     = msg('R', i32(5), "\x01\x02\x03\x04")
	paramVer    = msg('S', "server_version\x00", "16.2 (Debian 16.2-1.pgdg120+2)\x00")
	paramEnc    = msg('S', "server_encoding\x00", "UTF8\x00")
	keyData     = msg('K', i32(1234), i32(5678))
	ready       = msg('Z', "I")
	errNoHBA    = msg('E', "SFATAL\x00", "VFATAL\x00", "C28000\x00", "Mno pg_hba.conf entry for host \"198.18.0.1\", user \"postgres\", database \"postgres\", no encryption\x00", "Fauth.c\x00", "\x00")
	errNoRole   = msg('E', "SFATAL\x00", "VFATAL\x00", "C28000\x00", "Mrole \"reach\" does not exist\x00", "\x00")
	errStarting = msg('E', "SFATAL\x00", "C57P03\x00", "Mthe database system is starting up\x00", "\x00")
)

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		ssl     string // answer to SSLRequest
		reply   string // reply to StartupMessage
		want    fingerprint.Result
		wantErr error
	}{
		{
			name: "trust", ssl: "N", reply: authOK + paramEnc + paramVer + keyData + ready,
			want: fingerprint.Result{Version: "16.2", Auth: fingerprint.AuthNone, Details: map[string]string{
				"ssl": "no", "auth_method": "trust", "server_version": "16.2 (Debian 16.2-1.pgdg120+2)"}},
		},
		{
			name: "scram", ssl: "N", reply: authSASL,
			want: fingerprint.Result{Auth: fingerprint.AuthRequired, Details: map[string]string{
				"ssl": "no", "auth_method": "sasl", "sasl_mechanisms": "SCRAM-SHA-256,SCRAM-SHA-256-PLUS"}},
		},
		{
			name: "md5", ssl: "N", reply: authMD5,
			want: fingerprint.Result{Auth: fingerprint.AuthRequired, Details: map[string]string{"ssl": "no", "auth_method": "md5"}},
		},
		{
			name: "no pg_hba entry", ssl: "N", reply: errNoHBA,
			want: fingerprint.Result{Auth: fingerprint.AuthRequired, Details: map[string]string{"ssl": "no", "error_code": "28000",
				"error_message": `no pg_hba.conf entry for host "198.18.0.1", user "postgres", database "postgres", no encryption`}},
		},
		{
			// trust lets anyone in as an existing role; the role check comes after AuthenticationOk
			name: "trust, unknown role", ssl: "N", reply: authOK + errNoRole,
			want: fingerprint.Result{Auth: fingerprint.AuthNone, Details: map[string]string{"ssl": "no", "auth_method": "trust",
				"error_code": "28000", "error_message": `role "reach" does not exist`}},
		},
		{
			name: "starting up", ssl: "N", reply: errStarting,
			want: fingerprint.Result{Details: map[string]string{"ssl": "no", "error_code": "57P03", "error_message": "the database system is starting up"}},
		},
		{
			// a protocol 2 server answers a 3.0 startup with an 'E' and text
			name: "protocol 2 error", ssl: "N", reply: "EFATAL:  unsupported frontend protocol\n\x00",
			want: fingerprint.Result{Details: map[string]string{"ssl": "no", "error_message": "FATAL:  unsupported frontend protocol\n"}},
		},
		{name: "http", ssl: "HTTP/1.1 400 Bad Request\r\n\r\n", wantErr: fingerprint.ErrNotRecognised},
		{name: "ssh", ssl: "SSH-2.0-OpenSSH_9.2p1\r\n", wantErr: fingerprint.ErrNotRecognised},
		{name: "N then other protocol", ssl: "N", reply: "HTTP/1.1 400 Bad Request\r\n", wantErr: fingerprint.ErrNotRecognised},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := []grabtest.Step{expectBytes(string(sslRequest)), grabtest.Send(tc.ssl)}
			if tc.reply != "" {
				steps = append(steps, expectBytes(startup), grabtest.Send(tc.reply))
			}
			res, _, err := grabtest.Run(t, New(), grabtest.Script(steps...), 2*time.Second, 0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if res.Service != "" {
					t.Errorf("service %q on a foreign protocol", res.Service)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Service, tc.want.Product = "postgresql", "PostgreSQL"
			check(t, res, tc.want)
			if !bytes.HasPrefix([]byte(tc.reply), res.Banner) || len(res.Banner) == 0 {
				t.Errorf("banner %q is not a prefix of the reply", res.Banner)
			}
		})
	}
}

func check(t *testing.T, got, want fingerprint.Result) {
	t.Helper()
	if got.Service != want.Service || got.Product != want.Product || got.Version != want.Version || got.Auth != want.Auth {
		t.Errorf("got service %q product %q version %q auth %q, want %q %q %q %q",
			got.Service, got.Product, got.Version, got.Auth, want.Service, want.Product, want.Version, want.Auth)
	}
	if len(got.Details) != len(want.Details) {
		t.Errorf("details %q, want %q", got.Details, want.Details)
	}
	for k, v := range want.Details {
		if got.Details[k] != v {
			t.Errorf("details[%q] = %q, want %q", k, got.Details[k], v)
		}
	}
}

// TestGrabSSLOld covers a server that predates SSL support: it answers
// SSLRequest with an error ("Message Flow", SSL Session Encryption).
func TestGrabSSLOld(t *testing.T) {
	res, _, err := grabtest.Run(t, New(), grabtest.Script(expectBytes(string(sslRequest)),
		grabtest.Send("EFATAL:  unsupported frontend protocol 1234.5679\n\x00")), 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res, fingerprint.Result{Service: "postgresql", Product: "PostgreSQL",
		Details: map[string]string{"error_message": "FATAL:  unsupported frontend protocol 1234.5679\n"}})
}

// TestGrabTLS answers 'S' and speaks the startup inside TLS, checking that
// the client offers ALPN "postgresql" as PostgreSQL 17 requires.
func TestGrabTLS(t *testing.T) {
	tlsStep := func(s *grabtest.Server) error {
		cfg := grabtest.ServerTLSConfig(s.T)
		cfg.NextProtos = []string{"postgresql"}
		tc := tls.Server(s.Conn, cfg)
		if err := tc.Handshake(); err != nil {
			s.T.Errorf("server: tls handshake: %v", err)
			return err
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "postgresql" {
			s.T.Errorf("negotiated ALPN %q, want postgresql", p)
		}
		s.Conn = tc
		return nil
	}
	res, _, err := grabtest.Run(t, New(), grabtest.Script(expectBytes(string(sslRequest)), grabtest.Send("S"),
		tlsStep, expectBytes(startup), grabtest.Send(authSASL)), 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res, fingerprint.Result{Service: "postgresql", Product: "PostgreSQL", Auth: fingerprint.AuthRequired,
		Details: map[string]string{"ssl": "yes", "auth_method": "sasl", "sasl_mechanisms": "SCRAM-SHA-256,SCRAM-SHA-256-PLUS"}})
	if res.TLS == nil || res.TLS.ALPN != "postgresql" || res.TLS.Leaf() == nil || res.TLS.Leaf().Subject != "CN=reach.test" {
		t.Errorf("tls = %+v", res.TLS)
	}
}

// TestGrabTLSFails keeps the identification when the handshake fails.
func TestGrabTLSFails(t *testing.T) {
	res, _, err := grabtest.Run(t, New(), grabtest.Script(expectBytes(string(sslRequest)), grabtest.Send("S"),
		grabtest.ExpectN(5, nil), grabtest.Send("not tls at all\r\n")), 2*time.Second, 0)
	if err == nil || res.Service != "postgresql" || res.Details["ssl"] != "yes" {
		t.Errorf("got %+v, %v; want postgresql with ssl yes and an error", res, err)
	}
}

func TestHostile(t *testing.T) {
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "N"})
}

// TestHostileLength sends a message header claiming 2 GiB.
func TestHostileLength(t *testing.T) {
	_, took, err := grabtest.Run(t, New(), grabtest.Script(grabtest.ExpectN(8, nil), grabtest.Send("N"),
		grabtest.ExpectN(len(startup), nil), grabtest.Send("R\x7f\xff\xff\xff")), 300*time.Millisecond, grabtest.Limit)
	if !errors.Is(err, errTooLong) || took > 2*time.Second {
		t.Errorf("err = %v after %v, want a too-long error at once", err, took)
	}
}

func TestStartupMessage(t *testing.T) {
	// Int32 length, Int32 196608, "user\0postgres\0database\0postgres\0", final \0
	want := "\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00"
	if startup != want {
		t.Errorf("startup = %q, want %q", startup, want)
	}
	if binary.BigEndian.Uint32(sslRequest[4:]) != sslRequestCode {
		t.Error("ssl request code")
	}
}

// FuzzParseMessages feeds arbitrary bytes to the startup reply parser and
// checks that every string it reports was copied from the input and that no
// message body exceeds the limit.
func FuzzParseMessages(f *testing.F) {
	f.Add([]byte(authOK + paramVer + keyData + ready)) // trust: version from ParameterStatus
	f.Add([]byte(authSASL))                            // SASL mechanism list
	f.Add([]byte(errNoHBA))                            // ErrorResponse fields
	f.Add([]byte("EFATAL:  old\n\x00"))                // protocol 2 error text
	f.Add([]byte(msg('R', i32(10), "SCRAM")))          // unterminated mechanism
	f.Add([]byte("R\x00\x00\x00\x03"))                 // length below 4
	f.Add([]byte("S\x7f\xff\xff\xff"))                 // length far above the limit
	const max = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		res := fingerprint.Result{Details: map[string]string{}}
		st := state{}
		for range maxMessages {
			typ, body, err := readMessage(r, max)
			if err != nil {
				break
			}
			if len(body) > max {
				t.Fatalf("body of %d bytes, limit %d", len(body), max)
			}
			if done, err := st.apply(&res, typ, body); done || err != nil {
				break
			}
		}
		for _, k := range []string{"error_code", "error_message", "server_version"} {
			if v := res.Details[k]; v != "" && !bytes.Contains(data, []byte(v)) {
				t.Errorf("details[%q] = %q is not in the input", k, v)
			}
		}
		for _, m := range strings.Split(res.Details["sasl_mechanisms"], ",") {
			if !bytes.Contains(data, []byte(m)) {
				t.Errorf("mechanism %q is not in the input", m)
			}
		}
		if !bytes.Contains(data, []byte(res.Version)) {
			t.Errorf("version %q is not in the input", res.Version)
		}
	})
}

var _ net.Conn = (*tls.Conn)(nil)
