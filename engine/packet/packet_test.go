package packet

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func ip4(u uint32) net.IP { return net.IPv4(byte(u>>24), byte(u>>16), byte(u>>8), byte(u)).To4() }

// gopacketSYN serializes the same SYN with gopacket, computing lengths and
// checksums itself: the independent oracle for Template.Patch. The
// timestamps option carries p.TSval, TSecr 0 (RFC 7323 §3.2).
func gopacketSYN(t *testing.T, o Options, ttl uint8, p *Probe) []byte {
	t.Helper()
	opts, window := o.layout(1460)
	opts = bytes.Clone(opts)
	if i := bytes.Index(opts, []byte{optTimestamp, 10}); i >= 0 {
		binary.BigEndian.PutUint32(opts[i+2:], p.TSval)
	}
	var tcpOpts []layers.TCPOption
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optEOL, optNOP:
			tcpOpts = append(tcpOpts, layers.TCPOption{OptionType: layers.TCPOptionKind(opts[i]), OptionLength: 1})
			i++
		default:
			l := int(opts[i+1])
			tcpOpts = append(tcpOpts, layers.TCPOption{OptionType: layers.TCPOptionKind(opts[i]), OptionLength: uint8(l), OptionData: opts[i+2 : i+l]})
			i += l
		}
	}
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, Id: p.IPID, Flags: layers.IPv4DontFragment, TTL: ttl, Protocol: layers.IPProtocolTCP, SrcIP: ip4(p.Src), DstIP: ip4(p.Dst)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.Sport), DstPort: layers.TCPPort(p.Dport), Seq: p.Seq, SYN: true, Window: window, Options: tcpOpts}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomProbe(rng *rand.Rand) Probe {
	return Probe{Src: rng.Uint32(), Dst: rng.Uint32(), Sport: uint16(rng.Uint32()), Dport: uint16(rng.Uint32()), Seq: rng.Uint32(), IPID: uint16(rng.Uint32()), TSval: rng.Uint32()}
}

// TestPatchMatchesGopacket: for every option layout and many random probes
// (including all-ones and all-zero fields, which stress the end-around
// carry), the patched frame is byte-identical to gopacket's, both checksums
// verify with the full RFC 1071 sum, and gopacket decodes every field back.
func TestPatchMatchesGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, o := range []Options{OptionsLinux, OptionsWindows, OptionsBSD, OptionsMSS, OptionsNone} {
		tmpl, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC, DstMAC: dstMAC, Options: o, TTL: 61})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tmpl.Len())
		tmpl.Init(buf)
		probes := []Probe{{}, {Src: ^uint32(0), Dst: ^uint32(0), Sport: 0xffff, Dport: 0xffff, Seq: ^uint32(0), IPID: 0xffff, TSval: ^uint32(0)}}
		for range 2000 {
			probes = append(probes, randomProbe(rng))
		}
		for _, p := range probes {
			tmpl.Patch(buf, &p)
			want := gopacketSYN(t, o, 61, &p)
			// gopacket pads to the 60-byte Ethernet minimum; reach leaves
			// padding to the NIC
			if len(want) > len(buf) && bytes.Count(want[len(buf):], []byte{0}) == len(want)-len(buf) {
				want = want[:len(buf)]
			}
			if !bytes.Equal(buf, want) {
				t.Fatalf("%s %+v:\n reach    %x\n gopacket %x", o, p, buf, want)
			}
			ip := buf[EthLen : EthLen+IPv4Len]
			if c := Checksum(ip, 0); c != 0 {
				t.Fatalf("%s: IPv4 checksum does not verify (%#x)", o, c)
			}
			tcp := buf[EthLen+IPv4Len:]
			if c := Checksum(tcp, PseudoSum(p.Src, p.Dst, len(tcp))); c != 0 {
				t.Fatalf("%s: TCP checksum does not verify (%#x)", o, c)
			}
			pkt := gopacket.NewPacket(buf, layers.LayerTypeEthernet, gopacket.Default)
			gt, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			gi, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if gt == nil || gi == nil || !gt.SYN || gt.ACK || uint16(gt.SrcPort) != p.Sport || uint16(gt.DstPort) != p.Dport || gt.Seq != p.Seq || gi.Id != p.IPID || gi.TTL != 61 || !gi.DstIP.Equal(ip4(p.Dst)) {
				t.Fatalf("%s: gopacket decodes %v", o, pkt)
			}
		}
	}
}

// TestTSval: the probes' TCP timestamp value comes from the seed (the same
// seed gives the same values, another seed others) and advances one tick a
// millisecond from the scan's start, wrapping at 2^32; a frame carries the
// probe's TSval exactly where the layout has timestamps, with TSecr 0.
func TestTSval(t *testing.T) {
	w := PortWindow{61000, 4536}
	a, again, b := mustCookie(t, 1, w, 1), mustCookie(t, 1, w, 1), mustCookie(t, 2, w, 1)
	for _, elapsed := range []int64{0, 999_999, 1_000_000, 1_500_000, 3_600_000_000_000} {
		if a.TSval(elapsed) != again.TSval(elapsed) {
			t.Errorf("seed 1 at %d ns: TSval %#x and %#x", elapsed, a.TSval(elapsed), again.TSval(elapsed))
		}
		if a.TSval(elapsed) == b.TSval(elapsed) {
			t.Errorf("seeds 1 and 2 at %d ns: both TSval %#x", elapsed, a.TSval(elapsed))
		}
	}
	base := a.TSval(0)
	for _, tt := range []struct {
		elapsed int64
		ticks   uint32
	}{{0, 0}, {999_999, 0}, {1_000_000, 1}, {1_999_999, 1}, {3_600_000_000_000, 3_600_000}, {(1<<32 + 5) * 1_000_000, 5}} {
		if got := a.TSval(tt.elapsed) - base; got != tt.ticks {
			t.Errorf("%d ns after the start: %d ticks, want %d", tt.elapsed, got, tt.ticks)
		}
	}
	for _, tt := range []struct {
		o      Options
		hasTS  bool
		offset int // of TSval in the frame
	}{{OptionsLinux, true, 62}, {OptionsBSD, true, 66}, {OptionsWindows, false, 0}, {OptionsMSS, false, 0}, {OptionsNone, false, 0}} {
		tmpl, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC, DstMAC: dstMAC, Options: tt.o})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tmpl.Len())
		tmpl.Init(buf)
		p := Probe{Src: 0xC6120001, Dst: 0xC6130001, Sport: 61000, Dport: 80, TSval: a.TSval(42_000_000)}
		tmpl.Patch(buf, &p)
		var r Reply
		if err := DecodeReply(buf, &r); err != nil {
			t.Fatalf("%s: %v", tt.o, err)
		}
		if r.HasTS != tt.hasTS || tt.hasTS && (r.TSval != base+42 || r.TSecr != 0 || binary.BigEndian.Uint32(buf[tt.offset:]) != base+42) {
			t.Errorf("%s: HasTS %v TSval %#x TSecr %d; want HasTS %v, TSval %#x at byte %d", tt.o, r.HasTS, r.TSval, r.TSecr, tt.hasTS, base+42, tt.offset)
		}
	}
}

func TestTemplateSizes(t *testing.T) {
	want := map[Options]int{OptionsLinux: 74, OptionsWindows: 66, OptionsBSD: 78, OptionsMSS: 58, OptionsNone: 54}
	for o, n := range want {
		tmpl, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC, DstMAC: dstMAC, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		if tmpl.Len() != n {
			t.Errorf("%s: %d bytes, want %d", o, tmpl.Len(), n)
		}
	}
	if _, err := ParseOptions("solaris"); err == nil {
		t.Error("unknown option layout accepted")
	}
	if _, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC[:5], DstMAC: dstMAC}); err == nil {
		t.Error("short MAC accepted")
	}
	if FrameLen(54) != 84 || FrameLen(74) != 98 {
		t.Errorf("FrameLen(54)=%d FrameLen(74)=%d", FrameLen(54), FrameLen(74))
	}
}

func mustCookie(t testing.TB, seed uint64, w PortWindow, probes int) *Cookie {
	t.Helper()
	c, err := NewCookie(seed, w, probes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reply builds the decoded reply a target would send to probe p.
func reply(p Probe, flags uint8, ack uint32) *Reply {
	return &Reply{Src: p.Dst, Dst: p.Src, Sport: p.Dport, Dport: p.Sport, Flags: flags, Ack: ack}
}

func TestCookieCheck(t *testing.T) {
	windows := []PortWindow{{First: 61000, Count: 4536}, {First: 40000, Count: 3}, {First: 65535, Count: 1}}
	for _, w := range windows {
		for _, probes := range []int{1, 2, 3} {
			if uint32(probes) > w.Count {
				continue
			}
			c := mustCookie(t, 11, w, probes)
			rng := rand.New(rand.NewPCG(uint64(w.First), uint64(probes)))
			for range 500 {
				base := randomProbe(rng)
				ports := map[uint16]bool{}
				for k := range probes {
					p := base
					c.Fill(&p, k)
					if !w.Contains(p.Sport) {
						t.Fatalf("window %+v: source port %d outside", w, p.Sport)
					}
					ports[p.Sport] = true
					tests := []struct {
						r    *Reply
						want Verdict
					}{
						{reply(p, FlagSYN|FlagACK, p.Seq+1), SynAck},
						{reply(p, FlagRST|FlagACK, p.Seq+1), Reset},
						{reply(p, FlagRST|FlagACK, p.Seq), Reset},
						{reply(p, FlagRST, p.Seq+1), Reset},
						{reply(p, FlagSYN|FlagACK, p.Seq), BadCookie},
						{reply(p, FlagSYN|FlagACK, p.Seq+2), BadCookie},
						{reply(p, FlagACK, p.Seq+1), BadCookie},
						{reply(p, FlagSYN|FlagACK|FlagRST, p.Seq+1), Reset},
					}
					for _, tt := range tests {
						if got := c.Check(tt.r); got != tt.want {
							t.Fatalf("window %+v probes %d copy %d flags %#x ack-seq %d: %v, want %v", w, probes, k, tt.r.Flags, tt.r.Ack-p.Seq, got, tt.want)
						}
					}
					if got := c.Copy(reply(p, FlagSYN|FlagACK, p.Seq+1)); got != k {
						t.Fatalf("Copy = %d, want %d", got, k)
					}
					// the same reply from another address or port fails
					r := reply(p, FlagSYN|FlagACK, p.Seq+1)
					r.Src++
					if c.Check(r) == SynAck {
						t.Fatal("reply from another address accepted")
					}
				}
				if len(ports) != probes {
					t.Fatalf("%d copies used %d distinct ports", probes, len(ports))
				}
			}
			if w.First > 1 {
				r := &Reply{Dport: w.First - 1, Flags: FlagSYN | FlagACK}
				if c.Check(r) != NotOurs {
					t.Fatal("port below the window not rejected as NotOurs")
				}
			}
		}
	}
}

// TestCookieWindowWraps finds a target whose copies wrap from the window's
// end to its start and checks every copy validates and no other port does.
func TestCookieWindowWraps(t *testing.T) {
	w := PortWindow{First: 50000, Count: 8}
	c := mustCookie(t, 3, w, 3)
	for dst := uint32(1); ; dst++ {
		p := Probe{Src: 0xC6120001, Dst: dst, Dport: 443}
		c.Fill(&p, 0)
		if p.Sport < w.Last()-1 {
			continue
		}
		var valid []uint16
		for port := w.First; port <= w.Last(); port++ {
			q := p
			q.Sport = port
			q.Seq = uint32(c.Hash(q.Src, q.Dst, q.Sport, q.Dport))
			if c.Check(reply(q, FlagSYN|FlagACK, q.Seq+1)) == SynAck {
				valid = append(valid, port)
			}
		}
		if len(valid) != 3 || valid[0] != w.First {
			t.Fatalf("first port %d: valid ports %v, want 3 including the wrapped %d", p.Sport, valid, w.First)
		}
		return
	}
}

func TestCookieSeeds(t *testing.T) {
	w := PortWindow{First: 61000, Count: 4536}
	a, b := mustCookie(t, 1, w, 1), mustCookie(t, 2, w, 1)
	p, q := Probe{Src: 1, Dst: 2, Dport: 80}, Probe{Src: 1, Dst: 2, Dport: 80}
	a.Fill(&p, 0)
	b.Fill(&q, 0)
	if p.Seq == q.Seq {
		t.Fatal("seeds 1 and 2 give the same cookie")
	}
	for _, bad := range []struct {
		w PortWindow
		n int
	}{{PortWindow{0, 10}, 1}, {PortWindow{65535, 2}, 1}, {PortWindow{100, 0}, 1}, {PortWindow{100, 2}, 3}, {PortWindow{100, 2}, 0}} {
		if _, err := NewCookie(1, bad.w, bad.n); err == nil {
			t.Errorf("window %+v probes %d accepted", bad.w, bad.n)
		}
	}
}

// TestSipHashVector checks the SipHash-2-4 reference vector (Aumasson and
// Bernstein, appendix A: key 00..0f, message 00..0e → a129ca6149be45e5).
func TestSipHashVector(t *testing.T) {
	c := &Cookie{k0: 0x0706050403020100, k1: 0x0f0e0d0c0b0a0908}
	_ = c
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if got := sipHashRef(c.k0, c.k1, msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("SipHash vector: %#x", got)
	}
	// and Cookie.Hash is SipHash over the 12-byte big-endian message
	m := []byte{0xC6, 0x12, 0, 1, 0xC6, 0x13, 0, 9, 0xEE, 0x48, 0, 80}
	if got, want := c.Hash(0xC6120001, 0xC6130009, 0xEE48, 80), sipHashRef(c.k0, c.k1, m); got != want {
		t.Fatalf("Hash = %#x, want %#x", got, want)
	}
}

// validReply returns a probe of c filled for copy 0 and the valid SYN-ACK
// answering it, whose check runs both SipHashes (port offset and sequence):
// the path every real reply takes.
func validReply(t testing.TB, c *Cookie) (Probe, *Reply) {
	t.Helper()
	p := Probe{Src: 0xC6120001, Dst: 0xC6130001, Dport: 80}
	c.Fill(&p, 0)
	r := reply(p, FlagSYN|FlagACK, p.Seq+1)
	if v := c.Check(r); v != SynAck {
		t.Fatalf("the valid SYN-ACK checks as %v", v)
	}
	return p, r
}

func TestHotPathsAllocateNothing(t *testing.T) {
	tmpl, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC, DstMAC: dstMAC})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, tmpl.Len())
	tmpl.Init(buf)
	c := mustCookie(t, 1, PortWindow{61000, 4536}, 2)
	p, valid := validReply(t, c)
	tmpl.Patch(buf, &p)
	var r Reply
	if err := DecodeReply(buf, &r); err != nil {
		t.Fatal(err)
	}
	var verdict Verdict
	checks := map[string]func(){
		"Fill":        func() { p.Dst++; c.Fill(&p, 1) },
		"Patch":       func() { tmpl.Patch(buf, &p) },
		"DecodeReply": func() { _ = DecodeReply(buf, &r) }, // checked above
		"Check":       func() { verdict = c.Check(valid) },
	}
	for name, f := range checks {
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s allocates %v times", name, a)
		}
	}
	if verdict != SynAck {
		t.Errorf("Check ran on a reply it judged %v, not the SipHash path of a valid SYN-ACK", verdict)
	}
}

func BenchmarkProbe(b *testing.B) {
	tmpl, err := NewTemplate(TemplateConfig{SrcMAC: srcMAC, DstMAC: dstMAC})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, tmpl.Len())
	tmpl.Init(buf)
	c := mustCookie(b, 1, PortWindow{61000, 4536}, 1)
	p, valid := validReply(b, c)
	b.Run("cookie", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Dst++
			c.Fill(&p, 0)
		}
	})
	b.Run("patch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Dst++
			tmpl.Patch(buf, &p)
		}
	})
	var r Reply
	b.Run("decode", func(b *testing.B) {
		if err := DecodeReply(buf, &r); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = DecodeReply(buf, &r) // checked above
		}
	})
	// check: a valid SYN-ACK, so every call runs both SipHashes
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		var v Verdict
		for b.Loop() {
			v = c.Check(valid)
		}
		if v != SynAck {
			b.Fatalf("verdict %v, want syn-ack", v)
		}
	})
}

// sipHashRef is a plain SipHash-2-4 from the paper, independent of the
// library the cookie uses.
func sipHashRef(k0, k1 uint64, m []byte) uint64 {
	v0, v1, v2, v3 := k0^0x736f6d6570736575, k1^0x646f72616e646f6d, k0^0x6c7967656e657261, k1^0x7465646279746573
	rotl := func(x uint64, b uint) uint64 { return x<<b | x>>(64-b) }
	round := func() {
		v0 += v1
		v1 = rotl(v1, 13) ^ v0
		v0 = rotl(v0, 32)
		v2 += v3
		v3 = rotl(v3, 16) ^ v2
		v0 += v3
		v3 = rotl(v3, 21) ^ v0
		v2 += v1
		v1 = rotl(v1, 17) ^ v2
		v2 = rotl(v2, 32)
	}
	n := len(m)
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
		m = m[8:]
	}
	var last [8]byte
	copy(last[:], m)
	last[7] = byte(n)
	w := binary.LittleEndian.Uint64(last[:])
	v3 ^= w
	round()
	round()
	v0 ^= w
	v2 ^= 0xff
	for range 4 {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}
