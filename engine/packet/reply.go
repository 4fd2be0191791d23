package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Reply is a decoded TCP/IPv4 reply. The caller owns it; DecodeReply fills
// every field, so one Reply can be reused for every frame.
type Reply struct {
	VLAN         uint16 // 802.1Q VLAN ID, 0 when untagged
	Src, Dst     uint32 // IPv4 addresses, host order
	TTL          uint8
	IPID         uint16
	Sport, Dport uint16
	Seq, Ack     uint32
	Flags        uint8
	Window       uint16
	MSS          uint16 // MSS option in bytes, 0 when absent
	WScale       uint8  // window scale shift, valid when HasWScale
	HasWScale    bool
	TSval, TSecr uint32 // timestamps, valid when HasTS
	HasTS        bool
	SACKPerm     bool
}

// Decoding errors. They are values, so rejecting a frame allocates nothing.
var (
	ErrTruncated     = errors.New("truncated frame")
	ErrNotIPv4       = errors.New("not IPv4")
	ErrNotTCP        = errors.New("not TCP")
	ErrBadIHL        = errors.New("bad IPv4 header length")
	ErrBadLength     = errors.New("bad IPv4 total length")
	ErrFragment      = errors.New("IPv4 fragment")
	ErrBadDataOffset = errors.New("bad TCP data offset")
	ErrBadOption     = errors.New("malformed IPv4 or TCP option")
)

// DecodeReply decodes an Ethernet frame (at most one 802.1Q tag) carrying
// IPv4 (options allowed) and TCP (options parsed: MSS, window scale,
// SACK-permitted, timestamps) into r. It reads nothing past frame or past
// the IPv4 total length, rejects fragments, and allocates nothing. Checksums
// are not verified: the receiving NIC or kernel has done so, and the cookie
// check rejects forged replies.
//
// Its rule for a well-formed reply is also the XDP matcher's (bpf/xdp.c),
// so both receivers report the same frames (engine/recv TestReceiversAgree):
// 20 ≤ IHL·4 ≤ total length ≤ frame; IPv4 options well-formed inside the
// header; the TCP header inside the total length; TCP options well-formed
// inside the TCP header, MSS, window scale, SACK-permitted and timestamps
// at their own lengths.
func DecodeReply(frame []byte, r *Reply) error {
	if len(frame) < EthLen {
		return ErrTruncated
	}
	l2 := EthLen
	et := binary.BigEndian.Uint16(frame[ethType:])
	r.VLAN = 0
	if et == EtherTypeVLAN {
		if len(frame) < EthLen+vlanLen {
			return ErrTruncated
		}
		r.VLAN = binary.BigEndian.Uint16(frame[EthLen:]) & 0x0fff
		et = binary.BigEndian.Uint16(frame[EthLen+2:])
		l2 += vlanLen
	}
	if et != EtherTypeIP4 {
		return ErrNotIPv4
	}
	ip := frame[l2:]
	if len(ip) < IPv4Len {
		return ErrTruncated
	}
	if ip[ip4VerIHL]>>4 != 4 {
		return ErrNotIPv4
	}
	ihl := IPv4(ip).IHL()
	if ihl < IPv4Len {
		return ErrBadIHL
	}
	total := int(binary.BigEndian.Uint16(ip[ip4TotalLen:]))
	if total < ihl {
		return ErrBadLength
	}
	if total > len(ip) {
		return ErrTruncated
	}
	ip = ip[:total] // drop Ethernet padding
	if ihl > IPv4Len {
		if err := checkIPOptions(ip[IPv4Len:ihl]); err != nil {
			return err
		}
	}
	if binary.BigEndian.Uint16(ip[ip4FlagsFrag:])&0x3fff != 0 {
		return ErrFragment // MF set or non-zero offset
	}
	if ip[ip4Proto] != ProtoTCP {
		return ErrNotTCP
	}
	tcp := TCP(ip[ihl:])
	if len(tcp) < TCPLen {
		return ErrTruncated
	}
	off := tcp.DataOffset()
	if off < TCPLen {
		return ErrBadDataOffset
	}
	if off > len(tcp) {
		return ErrTruncated
	}
	h := IPv4(ip)
	r.Src, r.Dst, r.TTL, r.IPID = h.Src(), h.Dst(), h.TTL(), h.ID()
	r.Sport, r.Dport, r.Seq, r.Ack = tcp.Sport(), tcp.Dport(), tcp.Seq(), tcp.Ack()
	r.Flags, r.Window = tcp.Flags(), tcp.Window()
	return parseOptions(tcp[TCPLen:off], r)
}

// checkIPOptions walks the IPv4 options (RFC 791 §3.1): EOL ends them, NOP
// is one byte, every other option has a length that covers its type, length
// and at least one data byte (as gopacket requires) and stays inside the
// header.
func checkIPOptions(o []byte) error {
	for len(o) > 0 {
		switch o[0] {
		case 0:
			return nil
		case 1:
			o = o[1:]
		default:
			if len(o) < 2 || o[1] < 3 || int(o[1]) > len(o) {
				return ErrBadOption
			}
			o = o[o[1]:]
		}
	}
	return nil
}

func parseOptions(o []byte, r *Reply) error {
	r.MSS, r.WScale, r.HasWScale, r.TSval, r.TSecr, r.HasTS, r.SACKPerm = 0, 0, false, 0, 0, false, false
	for len(o) > 0 {
		kind := o[0]
		if kind == optEOL {
			return nil
		}
		if kind == optNOP {
			o = o[1:]
			continue
		}
		if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
			return ErrBadOption
		}
		body := o[2:o[1]]
		switch kind {
		case optMSS:
			if len(body) != 2 {
				return ErrBadOption
			}
			r.MSS = binary.BigEndian.Uint16(body)
		case optWScale:
			if len(body) != 1 {
				return ErrBadOption
			}
			r.WScale, r.HasWScale = body[0], true
		case optSACKPerm:
			if len(body) != 0 {
				return ErrBadOption
			}
			r.SACKPerm = true
		case optTimestamp:
			if len(body) != 8 {
				return ErrBadOption
			}
			r.TSval, r.TSecr, r.HasTS = binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:]), true
		}
		o = o[o[1]:]
	}
	return nil
}

// Describe appends a one-line human-readable summary of a decoded SYN or
// reply: "src:sport > dst:dport flags seq ack win ttl".
func (r *Reply) Describe(b []byte) []byte {
	b = appendAddr(b, r.Src)
	b = append(b, ':')
	b = appendUint(b, uint64(r.Sport))
	b = append(b, " > "...)
	b = appendAddr(b, r.Dst)
	b = append(b, ':')
	b = appendUint(b, uint64(r.Dport))
	b = append(b, " flags="...)
	for i, n := range "FSRPAUEC" {
		if r.Flags&(1<<i) != 0 {
			b = append(b, byte(n))
		}
	}
	b = append(b, " seq="...)
	b = appendUint(b, uint64(r.Seq))
	b = append(b, " ack="...)
	b = appendUint(b, uint64(r.Ack))
	b = append(b, " win="...)
	b = appendUint(b, uint64(r.Window))
	b = append(b, " ttl="...)
	b = appendUint(b, uint64(r.TTL))
	b = append(b, " id="...)
	return appendUint(b, uint64(r.IPID))
}

func appendAddr(b []byte, a uint32) []byte {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).AppendTo(b)
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
