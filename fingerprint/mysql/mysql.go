// Package mysql identifies MySQL and MariaDB servers by the Initial
// Handshake packet they send on connect (MySQL client/server protocol,
// "Connection Phase", Protocol::HandshakeV10), or by the ERR packet a server
// sends instead when it refuses the client's host.
//
// The grabber only reads: it never answers the handshake, so it learns
// nothing about credentials and leaves Auth unknown.
//
// Details keys:
//
//	server_version  the version string as sent ("5.5.5-10.11.6-MariaDB-0+deb12u1")
//	connection_id   the thread id the server gave the connection
//	capabilities    the 32-bit capability flags in hex ("0xc1fff7fe")
//	ssl             "yes" when CLIENT_SSL is set, else "no"
//	auth_plugin     the default authentication plugin ("caching_sha2_password")
//	error_code      the code of an ERR packet ("1130")
//	error_message   its message
package mysql

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// Protocol constants ("Connection Phase", "Capabilities Flags").
const (
	protocol10     = 0x0a       // HandshakeV10
	errPacket      = 0xff       // ERR_Packet header
	clientSSL      = 0x00000800 // CLIENT_SSL
	clientSecure   = 0x00008000 // CLIENT_SECURE_CONNECTION (CLIENT_RESERVED2)
	clientPlugin   = 0x00080000 // CLIENT_PLUGIN_AUTH
	headerLen      = 4          // payload length (3 bytes, little endian) and sequence id
	minHandshake   = 1 + 1 + 4 + 8 + 1 + 2
	replicationPre = "5.5.5-" // prefix MariaDB 10+ puts before its version for old replicas
)

// Grabber identifies MySQL and MariaDB; it is safe for concurrent use.
type Grabber struct{}

// New returns a MySQL grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "mysql".
func (*Grabber) Name() string { return "mysql" }

// Ports returns the IANA-registered port 3306.
func (*Grabber) Ports() []uint16 { return []uint16{3306} }

// Greets reports whether banner starts like a first packet: a 3-byte
// length below 64 KiB, sequence id 0, then protocol 10 or an ERR packet.
func (*Grabber) Greets(banner []byte) bool { return greets(banner) }

func greets(b []byte) bool {
	if len(b) < headerLen+1 {
		return false
	}
	n := packetLen(b)
	return n >= 3 && n < 1<<16 && b[3] == 0 && (b[4] == protocol10 || b[4] == errPacket)
}

// Grab reads the server's first packet from conn.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("mysql: set deadline: %w", err)
		}
	}
	buf := make([]byte, min(t.Limit(), 1<<16+headerLen))
	pkt, err := fingerprint.ReadUntil(ctx, conn, buf, func(b []byte) bool {
		return len(b) > headerLen && (!greets(b) || len(b) >= headerLen+packetLen(b))
	})
	switch {
	case len(pkt) > headerLen && !greets(pkt):
		return fingerprint.Result{}, fmt.Errorf("mysql: first bytes %q: %w", pkt[:headerLen+1], fingerprint.ErrNotRecognised)
	case len(pkt) <= headerLen || len(pkt) < headerLen+packetLen(pkt):
		if err == nil {
			err = fmt.Errorf("packet longer than %d bytes", len(buf))
		}
		return fingerprint.Result{}, fmt.Errorf("mysql: read handshake: %w", err)
	}
	pkt = pkt[:headerLen+packetLen(pkt)]
	res, err := Parse(pkt)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("mysql: %w", err)
	}
	res.Banner = pkt
	return res, nil
}

func packetLen(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 }

// versionRE takes the leading dotted number of a version string.
var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*`)

// Parse reads a server's first packet (header included): a HandshakeV10
// or an ERR packet. Every string it returns is a substring of pkt.
func Parse(pkt []byte) (fingerprint.Result, error) {
	if len(pkt) < headerLen+1 || pkt[3] != 0 || packetLen(pkt) != len(pkt)-headerLen {
		return fingerprint.Result{}, fmt.Errorf("bad packet header %x: %w", pkt[:min(len(pkt), headerLen)], fingerprint.ErrNotRecognised)
	}
	p := pkt[headerLen:]
	res := fingerprint.Result{Service: "mysql", Details: map[string]string{}}
	switch p[0] {
	case errPacket:
		// ERR_Packet: 0xff, int<2> error_code, then (CLIENT_PROTOCOL_41 only)
		// '#' and a 5-byte SQL state, then the message. A server refusing a
		// connection has not seen the client's capabilities, so the state
		// is usually absent.
		if len(p) < 3 {
			return fingerprint.Result{}, fmt.Errorf("err packet of %d bytes: %w", len(p), fingerprint.ErrNotRecognised)
		}
		res.Details["error_code"] = strconv.Itoa(int(binary.LittleEndian.Uint16(p[1:])))
		msg := p[3:]
		if len(msg) >= 6 && msg[0] == '#' {
			msg = msg[6:]
		}
		res.Details["error_message"] = string(msg)
		if strings.Contains(string(msg), "MariaDB") {
			res.Product = "MariaDB"
		}
		return res, nil
	case protocol10:
	default:
		return fingerprint.Result{}, fmt.Errorf("protocol version %d: %w", p[0], fingerprint.ErrNotRecognised)
	}
	// HandshakeV10: int<1> 10, string<NUL> server version, int<4> thread
	// id, string[8] auth-plugin-data-part-1, int<1> filler, int<2> lower
	// capability flags; then optionally int<1> character set, int<2> status
	// flags, int<2> upper capability flags, int<1> auth plugin data length,
	// string[10] reserved, auth-plugin-data-part-2, string<NUL> plugin name.
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 || len(p) < 1+end+1+minHandshake-2 {
		return fingerprint.Result{}, fmt.Errorf("handshake of %d bytes: %w", len(p), fingerprint.ErrNotRecognised)
	}
	sv := string(p[1 : 1+end])
	rest := p[1+end+1:]
	res.Details["server_version"] = sv
	res.Details["connection_id"] = strconv.FormatUint(uint64(binary.LittleEndian.Uint32(rest)), 10)
	caps := uint32(binary.LittleEndian.Uint16(rest[4+8+1:]))
	rest = rest[4+8+1+2:]
	var authLen int
	if len(rest) >= 1+2+2+1+10 {
		caps |= uint32(binary.LittleEndian.Uint16(rest[3:])) << 16
		authLen = int(rest[5])
		rest = rest[16:]
		if caps&clientSecure != 0 {
			n := max(13, authLen-8)
			rest = rest[min(n, len(rest)):]
		}
		if caps&clientPlugin != 0 && len(rest) > 0 {
			name := rest
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				name = rest[:i]
			}
			res.Details["auth_plugin"] = string(name)
		}
	}
	res.Details["capabilities"] = fmt.Sprintf("0x%08x", caps)
	res.Details["ssl"] = "no"
	if caps&clientSSL != 0 {
		res.Details["ssl"] = "yes"
	}
	res.Product, res.Version = product(sv)
	return res, nil
}

// product names the server behind a version string: MariaDB (whose
// version may follow the "5.5.5-" replication prefix), TiDB (version after
// "-TiDB-"), otherwise MySQL.
func product(sv string) (string, string) {
	switch {
	case strings.Contains(sv, "MariaDB"):
		return "MariaDB", versionRE.FindString(strings.TrimPrefix(sv, replicationPre))
	case strings.Contains(sv, "-TiDB-"):
		_, v, _ := strings.Cut(sv, "-TiDB-")
		return "TiDB", versionRE.FindString(strings.TrimPrefix(v, "v"))
	}
	return "MySQL", versionRE.FindString(sv)
}
