package packet

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
)

// Options names a TCP option layout copied from a real operating system's
// SYN, so that middleboxes which drop option-less SYNs let probes through.
type Options string

// The option layouts: Linux 6.x, Windows 10/11, FreeBSD/macOS, MSS only (as
// ZMap sends), and none (as masscan sends; 54-byte frames).
const (
	OptionsLinux   Options = "linux"
	OptionsWindows Options = "windows"
	OptionsBSD     Options = "bsd"
	OptionsMSS     Options = "mss"
	OptionsNone    Options = "none"
)

// ParseOptions validates an --tcp-options value.
func ParseOptions(s string) (Options, error) {
	switch o := Options(strings.ToLower(s)); o {
	case OptionsLinux, OptionsWindows, OptionsBSD, OptionsMSS, OptionsNone:
		return o, nil
	}
	return "", fmt.Errorf("tcp options %q: want linux, windows, bsd, mss or none", s)
}

// layout returns the option bytes (a multiple of 4) and the window an OS
// advertises with them, for the given MSS. A timestamps option carries
// TSval 0 here; Patch writes each probe's (Cookie.TSval).
func (o Options) layout(mss uint16) (opts []byte, window uint16) {
	m := []byte{optMSS, 4, byte(mss >> 8), byte(mss)}
	ts := []byte{optTimestamp, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	switch o {
	case OptionsLinux: // MSS, SACK-permitted, timestamps, NOP, window scale 7
		opts = append(append(append(m, optSACKPerm, 2), ts...), optNOP, optWScale, 3, 7)
		return opts, 64240
	case OptionsWindows: // MSS, NOP, window scale 8, NOP, NOP, SACK-permitted
		return append(m, optNOP, optWScale, 3, 8, optNOP, optNOP, optSACKPerm, 2), 64240
	case OptionsBSD: // MSS, NOP, window scale 6, NOP, NOP, timestamps, SACK-permitted, EOL, EOL
		opts = append(append(m, optNOP, optWScale, 3, 6, optNOP, optNOP), ts...)
		return append(opts, optSACKPerm, 2, optEOL, optEOL), 65535
	case OptionsMSS:
		return m, 65535
	default:
		return nil, 65535
	}
}

// TemplateConfig is what stays constant across a sender's probes.
type TemplateConfig struct {
	SrcMAC, DstMAC net.HardwareAddr // DstMAC: the gateway's or the on-link target's
	TTL            uint8            // IPv4 time to live; 0 means 64
	Options        Options          // TCP option layout; "" means linux
	MSS            uint16           // MSS option value in bytes; 0 means 1460
}

// Template is a SYN frame built once, with every per-probe field zero, and
// the partial checksums of its constant part.
type Template struct {
	frame  []byte
	ipSum  uint32 // partial sum of the IPv4 header with ID, src, dst, csum zero
	tcpSum uint32 // partial sum of pseudo-header and TCP header, variable fields zero
	tsOff  int    // offset of TSval in the TCP header (even), 0 without timestamps
}

// NewTemplate builds the SYN template.
func NewTemplate(cfg TemplateConfig) (*Template, error) {
	if len(cfg.SrcMAC) != 6 || len(cfg.DstMAC) != 6 {
		return nil, fmt.Errorf("build SYN template: source and destination MAC must be 6 bytes, got %d and %d", len(cfg.SrcMAC), len(cfg.DstMAC))
	}
	if cfg.TTL == 0 {
		cfg.TTL = 64
	}
	if cfg.Options == "" {
		cfg.Options = OptionsLinux
	}
	if cfg.MSS == 0 {
		cfg.MSS = 1460
	}
	opts, window := cfg.Options.layout(cfg.MSS)
	tcpLen := TCPLen + len(opts)
	f := make([]byte, EthLen+IPv4Len+tcpLen)
	copy(f[ethDst:], cfg.DstMAC)
	copy(f[ethSrc:], cfg.SrcMAC)
	binary.BigEndian.PutUint16(f[ethType:], EtherTypeIP4)
	ip := f[EthLen:]
	ip[ip4VerIHL] = 0x45
	binary.BigEndian.PutUint16(ip[ip4TotalLen:], uint16(IPv4Len+tcpLen))
	binary.BigEndian.PutUint16(ip[ip4FlagsFrag:], ip4DF)
	ip[ip4TTL] = cfg.TTL
	ip[ip4Proto] = ProtoTCP
	tcp := ip[IPv4Len:]
	tcp[tcpOff] = byte(tcpLen/4) << 4
	tcp[tcpFlags] = FlagSYN
	binary.BigEndian.PutUint16(tcp[tcpWindow:], window)
	copy(tcp[TCPLen:], opts)
	return &Template{
		frame:  f,
		ipSum:  sum(ip[:IPv4Len], 0),
		tcpSum: sum(tcp, PseudoSum(0, 0, tcpLen)),
		tsOff:  tsOffset(opts),
	}, nil
}

// tsOffset is the offset in the TCP header of the timestamps option's TSval
// within opts, 0 when there is none. Every layout puts it on an even offset,
// so Patch adds it to the checksum as two 16-bit words.
func tsOffset(opts []byte) int {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optEOL, optNOP:
			i++
		case optTimestamp:
			return TCPLen + i + 2
		default:
			i += int(opts[i+1])
		}
	}
	return 0
}

// Len is the frame length in bytes (without Ethernet FCS or padding).
func (t *Template) Len() int { return len(t.frame) }

// Frame returns a copy of the template frame.
func (t *Template) Frame() []byte { return append([]byte(nil), t.frame...) }

// Probe is what varies between SYNs: addresses (host order), ports, the
// sequence number (the cookie), the IPv4 identification and the TCP
// timestamp value (written only by layouts with timestamps).
type Probe struct {
	Src, Dst     uint32
	Sport, Dport uint16
	Seq          uint32
	IPID         uint16
	TSval        uint32
}

// Init copies the template into buf, which must hold Len bytes. A sender
// calls it once per buffer slot; Patch then rewrites only what varies.
func (t *Template) Init(buf []byte) { copy(buf, t.frame) }

// Patch writes p's fields into buf (initialised by Init) and sets both
// checksums. Because the template's variable fields are zero, each checksum
// is the template's partial sum plus the new fields, folded and complemented:
// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with m = 0. It allocates nothing.
func (t *Template) Patch(buf []byte, p *Probe) {
	ip := buf[EthLen : EthLen+IPv4Len]
	binary.BigEndian.PutUint16(ip[ip4ID:], p.IPID)
	binary.BigEndian.PutUint32(ip[ip4Src:], p.Src)
	binary.BigEndian.PutUint32(ip[ip4Dst:], p.Dst)
	addrs := p.Src>>16 + p.Src&0xffff + p.Dst>>16 + p.Dst&0xffff
	binary.BigEndian.PutUint16(ip[ip4Csum:], ^fold(t.ipSum+uint32(p.IPID)+addrs))

	tcp := buf[EthLen+IPv4Len:]
	binary.BigEndian.PutUint16(tcp[tcpSport:], p.Sport)
	binary.BigEndian.PutUint16(tcp[tcpDport:], p.Dport)
	binary.BigEndian.PutUint32(tcp[tcpSeq:], p.Seq)
	s := t.tcpSum + addrs + uint32(p.Sport) + uint32(p.Dport) + p.Seq>>16 + p.Seq&0xffff
	if t.tsOff != 0 {
		binary.BigEndian.PutUint32(tcp[t.tsOff:], p.TSval)
		s += p.TSval>>16 + p.TSval&0xffff
	}
	binary.BigEndian.PutUint16(tcp[tcpCsum:], ^fold(s))
}

// FrameLen is the on-wire size in bytes of a frame of n bytes: padding to
// the 60-byte Ethernet minimum, 4 bytes FCS, 8 bytes preamble and 12 bytes
// inter-frame gap (IEEE 802.3).
func FrameLen(n int) int { return max(n, 60) + 4 + 8 + 12 }
