// Package packet builds probe frames and decodes replies: header views over
// []byte with offset constants, the SYN template patched per probe with
// incrementally updated checksums, the SipHash cookie, and reply decoding
// into a caller-owned struct. Nothing here allocates per packet.
package packet

import "encoding/binary"

// Ethernet header (IEEE 802.3): destination MAC, source MAC, EtherType.
const (
	EthLen        = 14
	ethDst        = 0
	ethSrc        = 6
	ethType       = 12
	EtherTypeIP4  = 0x0800
	EtherTypeVLAN = 0x8100 // IEEE 802.1Q tag
	vlanLen       = 4
)

// IPv4 header (RFC 791) offsets, relative to the start of the IP header.
const (
	IPv4Len      = 20 // without options
	ip4VerIHL    = 0
	ip4TotalLen  = 2
	ip4ID        = 4
	ip4FlagsFrag = 6
	ip4TTL       = 8
	ip4Proto     = 9
	ip4Csum      = 10
	ip4Src       = 12
	ip4Dst       = 16
	ProtoTCP     = 6
	ip4DF        = 0x4000
)

// TCP header (RFC 9293) offsets, relative to the start of the TCP header.
const (
	TCPLen    = 20 // without options
	tcpSport  = 0
	tcpDport  = 2
	tcpSeq    = 4
	tcpAck    = 8
	tcpOff    = 12
	tcpFlags  = 13
	tcpWindow = 14
	tcpCsum   = 16
	tcpUrg    = 18
)

// TCP flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
)

// TCP option kinds (RFC 9293, RFC 7323, RFC 2018).
const (
	optEOL       = 0
	optNOP       = 1
	optMSS       = 2
	optWScale    = 3
	optSACKPerm  = 4
	optTimestamp = 8
)

// IPv4 is a view over an IPv4 header.
type IPv4 []byte

// IHL is the header length in bytes.
func (h IPv4) IHL() int { return int(h[ip4VerIHL]&0x0f) * 4 }

// Src is the source address, host order.
func (h IPv4) Src() uint32 { return binary.BigEndian.Uint32(h[ip4Src:]) }

// Dst is the destination address, host order.
func (h IPv4) Dst() uint32 { return binary.BigEndian.Uint32(h[ip4Dst:]) }

// TTL is the time to live.
func (h IPv4) TTL() uint8 { return h[ip4TTL] }

// ID is the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[ip4ID:]) }

// TCP is a view over a TCP header.
type TCP []byte

// Sport is the source port.
func (h TCP) Sport() uint16 { return binary.BigEndian.Uint16(h[tcpSport:]) }

// Dport is the destination port.
func (h TCP) Dport() uint16 { return binary.BigEndian.Uint16(h[tcpDport:]) }

// Seq is the sequence number.
func (h TCP) Seq() uint32 { return binary.BigEndian.Uint32(h[tcpSeq:]) }

// Ack is the acknowledgment number.
func (h TCP) Ack() uint32 { return binary.BigEndian.Uint32(h[tcpAck:]) }

// DataOffset is the header length in bytes.
func (h TCP) DataOffset() int { return int(h[tcpOff]>>4) * 4 }

// Flags are the TCP flags (FIN … ACK; URG, ECE, CWR in the high bits).
func (h TCP) Flags() uint8 { return h[tcpFlags] }

// Window is the receive window.
func (h TCP) Window() uint16 { return binary.BigEndian.Uint16(h[tcpWindow:]) }
