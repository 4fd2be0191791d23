// Package rdp identifies Remote Desktop Protocol servers from the X.224
// connection sequence ([MS-RDPBCGR] §1.3.1.1, §2.2.1.1 and §2.2.1.2).
//
// The grabber sends an X.224 Connection Request carrying an RDP_NEG_REQ
// that offers TLS, CredSSP (NLA) and CredSSP with Early User Authorization
// Result, reads the Connection Confirm, and, when the server chose a TLS
// based protocol, runs the TLS handshake to record the server certificate.
//
// Details keys:
//
//	selected_protocol  the protocol the server chose: rdp (standard RDP
//	                   security), ssl, hybrid, hybrid_ex, rdstls, rdsaad,
//	                   or the value in hex when unknown
//	neg_failure        the RDP_NEG_FAILURE code, by its name in the
//	                   specification, lower case ("ssl_not_allowed_by_server")
//	flags              RDP_NEG_RSP flags by name, comma-joined
//	                   ("extended_client_data,dynvc_gfx")
//
// Auth is AuthRequired when the server chose CredSSP (hybrid, hybrid_ex):
// it then authenticates the user before showing any desktop. Product is
// left empty: the negotiation does not name the software.
package rdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
)

// Protocol flags of RDP_NEG_REQ.requestedProtocols and
// RDP_NEG_RSP.selectedProtocol ([MS-RDPBCGR] §2.2.1.1.1).
const (
	ProtocolRDP      = 0x00 // standard RDP security
	ProtocolSSL      = 0x01 // TLS 1.0, 1.1 or 1.2
	ProtocolHybrid   = 0x02 // CredSSP
	ProtocolRDSTLS   = 0x04 // RDSTLS
	ProtocolHybridEx = 0x08 // CredSSP with Early User Authorization Result
	ProtocolRDSAAD   = 0x10 // RDS AAD authentication
)

// Negotiation message types ([MS-RDPBCGR] §2.2.1.1.1, §2.2.1.2.1,
// §2.2.1.2.2).
const (
	typeNegReq     = 0x01
	typeNegRsp     = 0x02
	typeNegFailure = 0x03
)

// maxConfirm bounds the Connection Confirm read, in bytes; the PDU is 19
// bytes with negotiation, 11 without.
const maxConfirm = 512

// Request returns the X.224 Connection Request TPDU sent to the server:
// 19 bytes, no routing token or cookie.
func Request() []byte {
	return []byte{
		// TPKT header (RFC 1006 §6): version 3, reserved, length 19.
		0x03, 0x00, 0x00, 0x13,
		// X.224 CR TPDU (ITU-T X.224 §13.3): length indicator 14, CR
		// code with CDT 0, DST-REF 0, SRC-REF 0, class 0.
		0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00,
		// RDP_NEG_REQ: type, flags 0, length 8 (little-endian), then
		// requestedProtocols = SSL | HYBRID | HYBRID_EX.
		typeNegReq, 0x00, 0x08, 0x00, ProtocolSSL | ProtocolHybrid | ProtocolHybridEx, 0x00, 0x00, 0x00,
	}
}

// Confirm is a parsed X.224 Connection Confirm.
type Confirm struct {
	// Negotiated is true when the confirm carried RDP_NEG_RSP or
	// RDP_NEG_FAILURE; without either the server speaks standard RDP
	// security only.
	Negotiated bool
	Failed     bool   // it was an RDP_NEG_FAILURE
	Flags      byte   // RDP_NEG_RSP flags
	Selected   uint32 // RDP_NEG_RSP selectedProtocol
	Failure    uint32 // RDP_NEG_FAILURE failureCode
}

// ParseConfirm parses a TPKT-framed X.224 Connection Confirm
// ([MS-RDPBCGR] §2.2.1.2) at the start of b.
func ParseConfirm(b []byte) (Confirm, error) {
	if len(b) < 4 || b[0] != 3 || b[1] != 0 {
		return Confirm{}, errors.New("not a TPKT header")
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4+7 || n > len(b) {
		return Confirm{}, fmt.Errorf("bad TPKT length %d (have %d bytes)", n, len(b))
	}
	x := b[4:n]
	if li := int(x[0]); li < 6 || li+1 > len(x) {
		return Confirm{}, fmt.Errorf("bad X.224 length indicator %d", li)
	}
	if x[1]&0xf0 != 0xd0 {
		return Confirm{}, fmt.Errorf("X.224 TPDU code %#x is not a Connection Confirm", x[1])
	}
	neg := x[7:]
	if len(neg) < 8 {
		return Confirm{}, nil
	}
	if l := binary.LittleEndian.Uint16(neg[2:]); l != 8 {
		return Confirm{}, fmt.Errorf("negotiation length %d, want 8", l)
	}
	v := binary.LittleEndian.Uint32(neg[4:])
	switch neg[0] {
	case typeNegRsp:
		return Confirm{Negotiated: true, Flags: neg[1], Selected: v}, nil
	case typeNegFailure:
		return Confirm{Negotiated: true, Failed: true, Failure: v}, nil
	}
	return Confirm{}, fmt.Errorf("negotiation type %#x", neg[0])
}

// ProtocolName returns the Details name of a selectedProtocol value.
func ProtocolName(p uint32) string {
	switch p {
	case ProtocolRDP:
		return "rdp"
	case ProtocolSSL:
		return "ssl"
	case ProtocolHybrid:
		return "hybrid"
	case ProtocolRDSTLS:
		return "rdstls"
	case ProtocolHybridEx:
		return "hybrid_ex"
	case ProtocolRDSAAD:
		return "rdsaad"
	}
	return fmt.Sprintf("%#x", p)
}

// failureNames are the RDP_NEG_FAILURE codes ([MS-RDPBCGR] §2.2.1.2.2).
var failureNames = [...]string{
	1: "ssl_required_by_server",
	2: "ssl_not_allowed_by_server",
	3: "ssl_cert_not_on_server",
	4: "inconsistent_flags",
	5: "hybrid_required_by_server",
	6: "ssl_with_user_auth_required_by_server",
}

// FailureName returns the Details name of a failureCode.
func FailureName(code uint32) string {
	if code < uint32(len(failureNames)) && failureNames[code] != "" {
		return failureNames[code]
	}
	return strconv.FormatUint(uint64(code), 10)
}

// flagNames are the RDP_NEG_RSP flags ([MS-RDPBCGR] §2.2.1.2.1), by bit.
var flagNames = [...]string{
	0: "extended_client_data",
	1: "dynvc_gfx",
	2: "reserved",
	3: "restricted_admin",
	4: "redirected_auth",
}

// FlagNames returns the names of the RDP_NEG_RSP flags set in f,
// comma-joined; unknown bits are given as "bit5" and so on.
func FlagNames(f byte) string {
	var names []string
	for i := range 8 {
		if f&(1<<i) == 0 {
			continue
		}
		if i < len(flagNames) {
			names = append(names, flagNames[i])
		} else {
			names = append(names, "bit"+strconv.Itoa(i))
		}
	}
	return strings.Join(names, ",")
}

// Grabber is the RDP grabber. The zero value is ready to use.
type Grabber struct{}

// New returns an RDP grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "rdp".
func (*Grabber) Name() string { return "rdp" }

// Ports returns 3389.
func (*Grabber) Ports() []uint16 { return []uint16{3389} }

// Grab sends the Connection Request, parses the Confirm and, for a TLS
// based protocol, records the TLS session.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	stop, err := fingerprint.Bind(ctx, conn)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("rdp: set deadline: %w", err)
	}
	defer stop()

	if _, err := conn.Write(Request()); err != nil {
		return fingerprint.Result{}, fmt.Errorf("rdp: write connection request: %w", err)
	}
	raw, err := fingerprint.ReadUntil(ctx, conn, make([]byte, maxConfirm), func(b []byte) bool {
		if len(b) > 0 && b[0] != 3 {
			return true // not TPKT: no need to wait for more
		}
		return len(b) >= 4 && len(b) >= int(binary.BigEndian.Uint16(b[2:]))
	})
	cc, perr := ParseConfirm(raw)
	if perr != nil {
		if err != nil && (len(raw) == 0 || raw[0] == 3) {
			return fingerprint.Result{}, fmt.Errorf("rdp: read connection confirm: %w", err)
		}
		return fingerprint.Result{}, fmt.Errorf("rdp: %w: %w", fingerprint.ErrNotRecognised, perr)
	}

	res := fingerprint.Result{
		Service: "rdp",
		Banner:  append([]byte(nil), raw[:min(len(raw), t.Limit())]...),
		Details: map[string]string{},
	}
	switch {
	case cc.Failed:
		res.Details["neg_failure"] = FailureName(cc.Failure)
		return res, nil
	case !cc.Negotiated:
		res.Details["selected_protocol"] = ProtocolName(ProtocolRDP)
		return res, nil
	}
	res.Details["selected_protocol"] = ProtocolName(cc.Selected)
	if f := FlagNames(cc.Flags); f != "" {
		res.Details["flags"] = f
	}
	if cc.Selected == ProtocolHybrid || cc.Selected == ProtocolHybridEx {
		res.Auth = fingerprint.AuthRequired
	}
	if cc.Selected != ProtocolRDP {
		// Every other protocol starts with a TLS handshake on this
		// connection ([MS-RDPBCGR] §5.4.5). A failure here leaves the
		// identification as it is.
		if _, info, err := fingerprint.Handshake(ctx, conn, t.Hostname); err == nil {
			res.TLS = info
		}
	}
	return res, nil
}
