package mysql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
)

// packet prepends the 4-byte header ("MySQL Packets"): int<3> payload
// length, int<1> sequence id 0.
func packet(payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 0}, payload...)
}

// handshake builds a Protocol::HandshakeV10 packet with a 20-byte scramble.
func handshake(version string, connID, caps uint32, plugin string) []byte {
	p := []byte{protocol10}
	p = append(p, version...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, connID)
	p = append(p, "abcdefgh"...) // auth-plugin-data-part-1
	p = append(p, 0)             // filler
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 0xff) // character set utf8mb4_0900_ai_ci
	p = append(p, 2, 0) // status SERVER_STATUS_AUTOCOMMIT
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)                    // auth plugin data length
	p = append(p, make([]byte, 10)...)   // reserved
	p = append(p, "ijklmnopqrst\x00"...) // auth-plugin-data-part-2, 13 bytes
	p = append(p, plugin...)
	return packet(append(p, 0))
}

// mysql8 is a MySQL 8.0.36 greeting written out byte by byte.
var mysql8 = []byte("\x4a\x00\x00\x00" + // payload length 74, sequence 0
	"\x0a" + "8.0.36\x00" + // protocol 10, server version
	"\x0b\x00\x00\x00" + // connection id 11
	"\x01\x02\x03\x04\x05\x06\x07\x08" + "\x00" + // scramble part 1, filler
	"\xff\xff" + "\xff" + "\x02\x00" + "\xff\xdf" + // caps low, charset, status, caps high
	"\x15" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" + // auth data length 21, reserved
	"\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x00" + // scramble part 2
	"caching_sha2_password\x00")

var (
	mariadb = handshake("5.5.5-10.11.6-MariaDB-0+deb12u1", 42, 0xa0fff7fe&^clientSSL|clientPlugin|clientSecure, "mysql_native_password")
	errHost = packet(append([]byte{0xff, 0x6a, 0x04}, "Host '198.18.0.1' is not allowed to connect to this MySQL server"...))
	errFull = packet(append([]byte{0xff, 0x10, 0x04}, "#08004Too many connections"...))
)

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		greet   []byte
		want    fingerprint.Result
		wantErr error
	}{
		{
			name: "mysql 8", greet: mysql8,
			want: fingerprint.Result{Product: "MySQL", Version: "8.0.36", Details: map[string]string{
				"server_version": "8.0.36", "connection_id": "11", "capabilities": "0xdfffffff", "ssl": "yes",
				"auth_plugin": "caching_sha2_password"}},
		},
		{
			name: "mariadb", greet: mariadb,
			want: fingerprint.Result{Product: "MariaDB", Version: "10.11.6", Details: map[string]string{
				"server_version": "5.5.5-10.11.6-MariaDB-0+deb12u1", "connection_id": "42", "capabilities": "0xa0fff7fe",
				"ssl": "no", "auth_plugin": "mysql_native_password"}},
		},
		{
			name: "tidb", greet: handshake("8.0.11-TiDB-v7.5.0", 7, 0x000fa68f|clientPlugin, "mysql_native_password"),
			want: fingerprint.Result{Product: "TiDB", Version: "7.5.0", Details: map[string]string{
				"server_version": "8.0.11-TiDB-v7.5.0", "connection_id": "7", "capabilities": "0x000fa68f",
				"ssl": "no", "auth_plugin": "mysql_native_password"}},
		},
		{
			// MySQL 3.23-era greeting: no bytes after the lower capability flags
			name: "short handshake", greet: packet([]byte("\x0a5.0.96\x00\x01\x00\x00\x00abcdefgh\x00\x2c\xa2")),
			want: fingerprint.Result{Product: "MySQL", Version: "5.0.96", Details: map[string]string{
				"server_version": "5.0.96", "connection_id": "1", "capabilities": "0x0000a22c", "ssl": "no"}},
		},
		{
			name: "host not allowed", greet: errHost,
			want: fingerprint.Result{Details: map[string]string{"error_code": "1130",
				"error_message": "Host '198.18.0.1' is not allowed to connect to this MySQL server"}},
		},
		{
			name: "too many connections, with sql state", greet: errFull,
			want: fingerprint.Result{Details: map[string]string{"error_code": "1040", "error_message": "Too many connections"}},
		},
		{name: "ssh", greet: []byte("SSH-2.0-OpenSSH_9.2p1\r\n"), wantErr: fingerprint.ErrNotRecognised},
		{name: "protocol 9", greet: packet([]byte("\x09old\x00")), wantErr: fingerprint.ErrNotRecognised},
		{name: "truncated handshake", greet: packet([]byte("\x0a8.0.36\x00\x01\x02")), wantErr: fingerprint.ErrNotRecognised},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.Run(t, New(), grabtest.Script(grabtest.Send(string(tc.greet))), 2*time.Second, 0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || res.Service != "" {
					t.Fatalf("got %+v, %v; want %v", res, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "mysql" || res.Product != tc.want.Product || res.Version != tc.want.Version || res.Auth != "" {
				t.Errorf("got %q %q %q auth %q, want mysql %q %q", res.Service, res.Product, res.Version, res.Auth, tc.want.Product, tc.want.Version)
			}
			if len(res.Details) != len(tc.want.Details) {
				t.Errorf("details %q, want %q", res.Details, tc.want.Details)
			}
			for k, v := range tc.want.Details {
				if res.Details[k] != v {
					t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
				}
			}
			if !bytes.Equal(res.Banner, tc.greet) {
				t.Errorf("banner %q, want the packet", res.Banner)
			}
		})
	}
}

func TestGreets(t *testing.T) {
	for _, tc := range []struct {
		banner string
		want   bool
	}{
		{string(mysql8), true},
		{string(errHost), true},
		{"\x4a\x00\x00\x00", false},     // header only
		{"\x4a\x00\x00\x01\x0a", false}, // sequence 1
		{"\x00\x00\x01\x00\x0a", false}, // 64 KiB
		{"SSH-2.0-OpenSSH_9.2p1\r\n", false},
		{"220 mail.example.com ESMTP Postfix\r\n", false},
		{"+OK Dovecot ready.\r\n", false},
		{"* OK IMAP4rev1\r\n", false},
		{"RFB 003.008\n", false},
	} {
		if got := New().Greets([]byte(tc.banner)); got != tc.want {
			t.Errorf("Greets(%q) = %v, want %v", tc.banner, got, tc.want)
		}
	}
}

func TestHostile(t *testing.T) {
	// a header announcing a 60000-byte handshake, then the hostile bytes
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "\x60\xea\x00\x00\x0a"})
}

// FuzzParse checks that Parse never panics, that every string it returns
// is copied from the input, and that ssl agrees with the capabilities.
func FuzzParse(f *testing.F) {
	f.Add(mysql8)                                                   // full HandshakeV10 with plugin name
	f.Add(mariadb)                                                  // replication prefix, MariaDB product
	f.Add(errHost)                                                  // ERR packet without SQL state
	f.Add(errFull)                                                  // ERR packet with SQL state
	f.Add(packet([]byte("\x0a\x00")))                               // empty version, truncated
	f.Add(handshake(strings.Repeat("9", 300), 1, clientPlugin, "")) // long version, empty plugin
	f.Add([]byte("\x05\x00\x00\x00\xff\x01"))                       // ERR too short
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		if err != nil {
			if res.Service != "" {
				t.Errorf("service %q with error %v", res.Service, err)
			}
			return
		}
		for _, k := range []string{"server_version", "auth_plugin", "error_message"} {
			if v := res.Details[k]; !bytes.Contains(data, []byte(v)) {
				t.Errorf("details[%q] = %q is not in the input", k, v)
			}
		}
		if !bytes.Contains(data, []byte(res.Version)) {
			t.Errorf("version %q is not in the input", res.Version)
		}
		if c := res.Details["capabilities"]; c != "" {
			caps, err := strconv.ParseUint(c, 0, 32)
			if err != nil {
				t.Fatalf("capabilities %q: %v", c, err)
			}
			if ssl := res.Details["ssl"] == "yes"; ssl != (caps&clientSSL != 0) {
				t.Errorf("ssl %q with capabilities %s", res.Details["ssl"], c)
			}
		}
	})
}
