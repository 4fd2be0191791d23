package packet

import (
	"errors"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// synAck serializes a reply with gopacket: optional VLAN tag, IPv4 options,
// TCP options.
func synAck(t testing.TB, vlan bool, ipOpts bool, tcpOpts []layers.TCPOption) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: dstMAC, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv4})
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, Id: 777, TTL: 57, Protocol: layers.IPProtocolTCP, SrcIP: ip4(0xC6130001), DstIP: ip4(0xC6120001)}
	if ipOpts {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOP NOP NOP EOL
	}
	tcp := &layers.TCP{SrcPort: 443, DstPort: 61234, Seq: 1000, Ack: 2001, SYN: true, ACK: true, Window: 29200, Options: tcpOpts}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, ip, tcp)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var fullOpts = []layers.TCPOption{
	{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0x78}},
	{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
	{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 9, 0x5e, 0xed, 0, 1}},
	{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
	{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
}

func TestDecodeReply(t *testing.T) {
	for _, tt := range []struct {
		name         string
		vlan, ipOpts bool
	}{{"plain", false, false}, {"vlan", true, false}, {"ip options", false, true}, {"vlan and ip options", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			var r Reply
			if err := DecodeReply(synAck(t, tt.vlan, tt.ipOpts, fullOpts), &r); err != nil {
				t.Fatal(err)
			}
			want := Reply{Src: 0xC6130001, Dst: 0xC6120001, TTL: 57, IPID: 777, Sport: 443, Dport: 61234, Seq: 1000, Ack: 2001,
				Flags: FlagSYN | FlagACK, Window: 29200, MSS: 1400, WScale: 7, HasWScale: true, TSval: 9, TSecr: 0x5eed0001, HasTS: true, SACKPerm: true}
			if tt.vlan {
				want.VLAN = 42
			}
			if r != want {
				t.Fatalf("got  %+v\nwant %+v", r, want)
			}
		})
	}
}

func TestDecodeReplyRejects(t *testing.T) {
	good := synAck(t, false, false, fullOpts)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name  string
		frame []byte
		err   error
	}{
		{"empty", nil, ErrTruncated},
		{"ethernet only", good[:EthLen], ErrTruncated},
		{"short ip", good[:EthLen+10], ErrTruncated},
		{"arp", mod(func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), ErrNotIPv4},
		{"ipv6 version", mod(func(b []byte) []byte { b[14] = 0x65; return b }), ErrNotIPv4},
		{"ihl 4", mod(func(b []byte) []byte { b[14] = 0x44; return b }), ErrBadIHL},
		{"ihl past tcp header", mod(func(b []byte) []byte { b[14] = 0x4f; return b }), ErrBadOption},
		{"ip option past header", mod(func(b []byte) []byte { b[14] = 0x46; b[34], b[35] = 7, 9; return b }), ErrBadOption},
		{"total length past frame", mod(func(b []byte) []byte { b[16] = 0x0f; return b }), ErrTruncated},
		{"total below ihl", mod(func(b []byte) []byte { b[16], b[17] = 0, 10; return b }), ErrBadLength},
		{"udp", mod(func(b []byte) []byte { b[23] = 17; return b }), ErrNotTCP},
		{"fragment offset", mod(func(b []byte) []byte { b[21] = 1; return b }), ErrFragment},
		{"more fragments", mod(func(b []byte) []byte { b[20] |= 0x20; return b }), ErrFragment},
		{"data offset 4", mod(func(b []byte) []byte { b[46] = 0x40; return b }), ErrBadDataOffset},
		{"data offset past segment", mod(func(b []byte) []byte { b[46] = 0xf0; return b }), ErrTruncated},
		{"tcp truncated by ip length", mod(func(b []byte) []byte { b[16], b[17] = 0, 30; return b }), ErrTruncated},
		{"option length 1", mod(func(b []byte) []byte { b[55] = 1; return b }), ErrBadOption},
		{"option past header", mod(func(b []byte) []byte { b[len(b)-3] = 2; b[len(b)-2] = 40; return b }), ErrBadOption},
		{"mss length 3", mod(func(b []byte) []byte { b[55] = 3; return b }), ErrBadOption},
	}
	for _, tt := range tests {
		var r Reply
		if err := DecodeReply(tt.frame, &r); !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
	}
	// Ethernet padding after the IPv4 total length is ignored.
	padded := append(append([]byte(nil), good...), 0, 0, 0, 0, 0, 0)
	var r Reply
	if err := DecodeReply(padded, &r); err != nil || r.MSS != 1400 {
		t.Fatalf("padded frame: %v, %+v", err, r)
	}
}

// FuzzDecodeReply checks the decoder against gopacket: whatever reach
// accepts, gopacket decodes to the same addresses, ports, numbers, flags,
// window and TTL; and a frame reach rejects for a bad IPv4 header length, a
// bad TCP data offset or a malformed option is one gopacket also fails to
// decode, unless the only fault is a known TCP option of the wrong length
// (an MSS of 3 bytes), which gopacket does not judge. (A total length below
// the header is left out: gopacket reads a zero total length as "TSO, use
// the frame's length".)
func FuzzDecodeReply(f *testing.F) {
	f.Add(synAck(f, false, false, fullOpts))                         // SYN-ACK with Linux-style options
	f.Add(synAck(f, true, false, nil))                               // VLAN-tagged, no TCP options
	f.Add(synAck(f, false, true, fullOpts))                          // IPv4 options (IHL 6)
	f.Add(synAck(f, false, false, fullOpts)[:40])                    // truncated inside TCP
	f.Add(append(synAck(f, false, false, nil), make([]byte, 20)...)) // Ethernet padding
	f.Add([]byte{})                                                  // empty
	bad := func(edit func(b []byte)) []byte { b := synAck(f, false, false, fullOpts); edit(b); return b }
	f.Add(bad(func(b []byte) { b[14] = 0x44 }))                     // IHL 4: rejected by both
	f.Add(bad(func(b []byte) { b[14] = 0x4f }))                     // IHL 15: the TCP header read as IPv4 options
	f.Add(bad(func(b []byte) { b[14], b[34], b[35] = 0x46, 7, 9 })) // an IPv4 option running past the header
	f.Add(bad(func(b []byte) { b[46] = 0x40 }))                     // TCP data offset 4
	f.Add(bad(func(b []byte) { b[55] = 1 }))                        // TCP option length 1
	f.Add(synAck(f, false, false, []layers.TCPOption{               // window scale of 4 bytes: reach rejects, gopacket does not judge
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 4, OptionData: []byte{7, 0}}}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var r Reply
		err := DecodeReply(frame, &r)
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
		if err != nil {
			if (errors.Is(err, ErrBadIHL) || errors.Is(err, ErrBadDataOffset) || errors.Is(err, ErrBadOption)) &&
				pkt.ErrorLayer() == nil && !wrongOptionLength(pkt) {
				t.Fatalf("reach rejects the frame (%v), gopacket decodes it cleanly: %v", err, pkt)
			}
			return
		}
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("reach accepted a frame gopacket does not decode as IPv4/TCP: %v", pkt)
		}
		if u32(ip.SrcIP) != r.Src || u32(ip.DstIP) != r.Dst || ip.TTL != r.TTL || ip.Id != r.IPID ||
			uint16(tcp.SrcPort) != r.Sport || uint16(tcp.DstPort) != r.Dport || tcp.Seq != r.Seq || tcp.Ack != r.Ack ||
			tcp.Window != r.Window || tcp.SYN != (r.Flags&FlagSYN != 0) || tcp.ACK != (r.Flags&FlagACK != 0) || tcp.RST != (r.Flags&FlagRST != 0) {
			t.Fatalf("disagreement:\n reach    %+v\n gopacket %v %v", r, ip, tcp)
		}
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2 && r.MSS != uint16(o.OptionData[0])<<8|uint16(o.OptionData[1]) {
				t.Fatalf("MSS: reach %d, gopacket %v", r.MSS, o.OptionData)
			}
		}
	})
}

func u32(ip []byte) uint32 {
	ip = ip[len(ip)-4:]
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

// wrongOptionLength reports whether gopacket decoded a TCP option reach
// knows (MSS, window scale, SACK-permitted, timestamps) with a length other
// than RFC 9293 and RFC 7323 give it.
func wrongOptionLength(pkt gopacket.Packet) bool {
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		return false
	}
	want := map[layers.TCPOptionKind]uint8{layers.TCPOptionKindMSS: 4, layers.TCPOptionKindWindowScale: 3,
		layers.TCPOptionKindSACKPermitted: 2, layers.TCPOptionKindTimestamps: 10}
	for _, o := range tcp.Options {
		if l, ok := want[o.OptionType]; ok && o.OptionLength != l {
			return true
		}
	}
	return false
}
