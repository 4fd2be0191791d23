// Package vnc identifies VNC servers from the start of the RFB handshake
// (RFC 6143 §7.1): the ProtocolVersion the server announces and the
// security types it offers.
//
// Details keys:
//
//	version         the protocol version announced, "major.minor" ("3.8")
//	security_types  the security types offered (RFC 6143 §7.1.2, IANA "RFB
//	                Security Types"), in decimal, comma-joined ("1,2"); for
//	                version 3.3, the one type the server chose
//	reason          the server's reason when it offered no type at all
//
// Auth is AuthNone when the server offers None (1); AuthRequired when every
// type offered demands credentials (VNC Authentication 2, RA2 5, RA2ne 6,
// Ultra 17, SASL 20, MD5 hash 21, Apple Remote Desktop 30); unknown
// otherwise, since Tight (16), TLS (18) and VeNCrypt (19) wrap sub-types
// that may include None.
package vnc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// versionLen is the length of a ProtocolVersion message, "RFB xxx.yyy\n",
// in bytes (RFC 6143 §7.1.1).
const versionLen = 12

// maxReason is the most bytes of a failure reason read, in bytes.
const maxReason = 1024

// Security types (RFC 6143 §7.1.2 and the IANA registry).
const (
	SecInvalid = 0
	SecNone    = 1
	SecVNCAuth = 2
)

// authTypes are the security types that always demand credentials: VNC
// Authentication, RA2, RA2ne, Ultra, SASL, MD5 hash, Apple Remote Desktop.
var authTypes = [...]uint32{2, 5, 6, 17, 20, 21, 30}

// Version is an RFB protocol version.
type Version struct{ Major, Minor int }

// String returns "major.minor", without the zero padding of the wire form.
func (v Version) String() string { return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) }

// Wire returns the ProtocolVersion message for v, "RFB 003.008\n".
func (v Version) Wire() []byte { return fmt.Appendf(nil, "RFB %03d.%03d\n", v.Major, v.Minor) }

// less reports whether v is before w.
func (v Version) less(w Version) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// Reply returns the version a client answers to a server announcing v: 3.8
// or 3.7 when the server has them, 3.3 otherwise (RFC 6143 §7.1.1: other
// versions are to be treated as 3.3).
func Reply(v Version) Version {
	switch {
	case !v.less(Version{3, 8}):
		return Version{3, 8}
	case v == Version{3, 7}:
		return v
	}
	return Version{3, 3}
}

// ParseVersion parses a ProtocolVersion message, "RFB xxx.yyy\n".
func ParseVersion(b []byte) (Version, error) {
	if len(b) < versionLen || !bytes.HasPrefix(b, []byte("RFB ")) || b[7] != '.' || b[11] != '\n' {
		return Version{}, errors.New("not an RFB ProtocolVersion")
	}
	major, err1 := digits(b[4:7])
	minor, err2 := digits(b[8:11])
	if err1 != nil || err2 != nil {
		return Version{}, errors.New("RFB version is not decimal")
	}
	return Version{major, minor}, nil
}

func digits(b []byte) (int, error) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a digit")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// Security is what the server said after the version exchange.
type Security struct {
	Types  []uint32 // offered types (3.7, 3.8) or the chosen one (3.3); empty on failure
	Reason string   // failure reason, at most maxReason bytes
}

// errShort means the message is not complete yet.
var errShort = errors.New("short security message")

// ParseSecurity parses the server's security message for protocol version
// v: a count and list of types for 3.7 and later (RFC 6143 §7.1.2), one
// U32 type for 3.3 (RFB 3.3 §6.2); a count or type of zero is followed by a
// reason string (U32 length, then text). It returns errShort when b holds
// only part of the message. A reason longer than maxReason counts as
// complete once maxReason bytes of it are in.
func ParseSecurity(b []byte, v Version) (Security, error) {
	var s Security
	var rest []byte
	if v == (Version{3, 3}) {
		if len(b) < 4 {
			return s, errShort
		}
		t := binary.BigEndian.Uint32(b)
		if t != SecInvalid {
			s.Types = []uint32{t}
			return s, nil
		}
		rest = b[4:]
	} else {
		if len(b) < 1 {
			return s, errShort
		}
		n := int(b[0])
		if n > 0 {
			if len(b) < 1+n {
				return s, errShort
			}
			for _, t := range b[1 : 1+n] {
				s.Types = append(s.Types, uint32(t))
			}
			return s, nil
		}
		rest = b[1:]
	}
	if len(rest) < 4 {
		return s, errShort
	}
	n := int(min(binary.BigEndian.Uint32(rest), maxReason))
	if len(rest) < 4+n {
		return s, errShort
	}
	s.Reason = string(rest[4 : 4+n])
	return s, nil
}

// Grabber is the VNC grabber. The zero value is ready to use.
type Grabber struct{}

// New returns a VNC grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "vnc".
func (*Grabber) Name() string { return "vnc" }

// Ports returns 5900 and 5901.
func (*Grabber) Ports() []uint16 { return []uint16{5900, 5901} }

// Greets reports whether banner is an RFB ProtocolVersion, or the start of
// one.
func (*Grabber) Greets(banner []byte) bool {
	const pattern = "RFB 999.999\n" // 9: any decimal digit
	if len(banner) == 0 {
		return false
	}
	for i, c := range banner[:min(len(banner), versionLen)] {
		if p := pattern[i]; p == '9' && (c < '0' || c > '9') || p != '9' && c != p {
			return false
		}
	}
	return true
}

// Grab reads the server's version, answers with the highest version both
// sides have, and reads the security types.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	stop, err := fingerprint.Bind(ctx, conn)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("vnc: set deadline: %w", err)
	}
	defer stop()

	vb, err := fingerprint.ReadUntil(ctx, conn, make([]byte, versionLen), func(b []byte) bool {
		return len(b) >= versionLen || !bytes.HasPrefix([]byte("RFB "), b[:min(len(b), 4)])
	})
	v, perr := ParseVersion(vb)
	if perr != nil {
		if err != nil && len(vb) < versionLen && bytes.HasPrefix([]byte("RFB "), vb[:min(len(vb), 4)]) {
			return fingerprint.Result{}, fmt.Errorf("vnc: read version: %w", err)
		}
		return fingerprint.Result{}, fmt.Errorf("vnc: %w: %w", fingerprint.ErrNotRecognised, perr)
	}
	res := fingerprint.Result{
		Service: "vnc",
		Banner:  bytes.Clone(vb[:min(len(vb), t.Limit())]),
		Details: map[string]string{"version": v.String()},
	}

	use := Reply(v)
	if _, err := conn.Write(use.Wire()); err != nil {
		return res, fmt.Errorf("vnc: write version: %w", err)
	}
	sb, err := fingerprint.ReadUntil(ctx, conn, make([]byte, 1+255+4+maxReason), func(b []byte) bool {
		_, e := ParseSecurity(b, use)
		return e == nil
	})
	sec, perr := ParseSecurity(sb, use)
	if perr != nil {
		if err == nil {
			err = perr
		}
		return res, fmt.Errorf("vnc: read security types: %w", err)
	}
	if room := t.Limit() - len(res.Banner); room > 0 {
		res.Banner = append(res.Banner, sb[:min(len(sb), room)]...)
	}
	if len(sec.Types) == 0 {
		if sec.Reason != "" {
			res.Details["reason"] = sec.Reason
		}
		return res, nil
	}
	var names []string
	for _, st := range sec.Types {
		names = append(names, strconv.FormatUint(uint64(st), 10))
	}
	res.Details["security_types"] = strings.Join(names, ",")
	res.Auth = auth(sec.Types)
	return res, nil
}

// auth says what the offered security types mean for access.
func auth(types []uint32) fingerprint.Auth {
	if slices.Contains(types, SecNone) {
		return fingerprint.AuthNone
	}
	for _, t := range types {
		if !slices.Contains(authTypes[:], t) {
			return ""
		}
	}
	return fingerprint.AuthRequired
}
