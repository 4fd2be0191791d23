package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/reachscan/reach/engine/packet"
)

const (
	ourIP    = 0xC6120001 // 198.18.0.1
	targetIP = 0xC6130105 // 198.19.1.5
	xdpDrop  = 1
	xdpPass  = 2
	xdpTX    = 3
)

var (
	ourMAC    = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	targetMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	window    = packet.PortWindow{First: 61000, Count: 4536}
)

func ip4(u uint32) net.IP { return net.IPv4(byte(u>>24), byte(u>>16), byte(u>>8), byte(u)).To4() }

func loadMatcher(t testing.TB, seed uint64, probes int, reset bool) (*Matcher, *packet.Cookie) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading XDP programs and BPF_PROG_TEST_RUN need CAP_BPF and CAP_NET_ADMIN")
	}
	c, err := packet.NewCookie(seed, window, probes)
	if err != nil {
		t.Fatal(err)
	}
	k0, k1 := c.Key()
	m, err := Load(Config{Key0: k0, Key1: k1, SrcFirst: ourIP, SrcLast: ourIP + 1, WindowFirst: window.First, WindowCount: window.Count, Probes: uint32(probes), SendReset: reset})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, c
}

// reply builds the frame a target sends back to probe p.
type replyOpts struct {
	syn, ack, rst bool
	ackNum        uint32
	vlan, ipOpts  bool
	mss           uint16
	truncate      int
}

func replyFrame(t testing.TB, p packet.Probe, o replyOpts) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: targetMAC, DstMAC: ourMAC, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	if o.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4})
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 55, Protocol: layers.IPProtocolTCP, SrcIP: ip4(p.Dst), DstIP: ip4(p.Src)}
	if o.ipOpts {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.Dport), DstPort: layers.TCPPort(p.Sport), Seq: 777, Ack: o.ackNum, SYN: o.syn, ACK: o.ack, RST: o.rst, Window: 29200}
	if o.mss != 0 {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(o.mss >> 8), byte(o.mss)}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, ip, tcp)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if o.truncate > 0 {
		b = b[:o.truncate]
	}
	return b
}

func probe(c *packet.Cookie, dst uint32, dport uint16, k int) packet.Probe {
	p := packet.Probe{Src: ourIP, Dst: dst, Dport: dport}
	c.Fill(&p, k)
	return p
}

func runXDP(t testing.TB, m *Matcher, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := m.Program().Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	// the kernel reports the output length through the slice
	return ret, out
}

// readEvents returns the events in the ring buffer. The program submits
// them before BPF_PROG_TEST_RUN returns, so a reader with a deadline already
// passed reads every one of them and then stops: no waiting.
func readEvents(t testing.TB, m *Matcher) []Event {
	t.Helper()
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var evs []Event
	var rec ringbuf.Record
	rd.SetDeadline(time.Now())
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return evs
			}
			t.Fatal(err)
		}
		var e Event
		if err := DecodeEvent(rec.RawSample, &e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
}

// counters reads the matcher's counters.
func counters(t testing.TB, m *Matcher) Counters {
	t.Helper()
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// minus is the change from before to c, counter by counter.
func (c Counters) minus(before Counters) Counters {
	return Counters{Passed: c.Passed - before.Passed, SynAck: c.SynAck - before.SynAck, Rst: c.Rst - before.Rst,
		BadCookie: c.BadCookie - before.BadCookie, Malformed: c.Malformed - before.Malformed,
		RingbufFull: c.RingbufFull - before.RingbufFull, TX: c.TX - before.TX, ResetFailed: c.ResetFailed - before.ResetFailed}
}

// event is what TestMatcher expects of a case's one ring-buffer event.
type event struct {
	mss   uint16
	flags uint8
}

func TestMatcher(t *testing.T) {
	m, c := loadMatcher(t, 42, 1, true)
	p := probe(c, targetIP, 443, 0)
	other, err := packet.NewCookie(43, window, 1) // a stale scan's key
	if err != nil {
		t.Fatal(err)
	}
	q := probe(other, targetIP, 443, 0)
	const synAck, rstAck = packet.FlagSYN | packet.FlagACK, packet.FlagRST | packet.FlagACK
	tests := []struct {
		name   string
		frame  []byte
		ret    uint32
		event  *event   // the one event, nil when none
		delta  Counters // exactly how the counters move
		rstLen int      // length of the XDP_TX frame, 0 when none
	}{
		{"syn-ack", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, mss: 1380}), xdpTX, &event{1380, synAck}, Counters{SynAck: 1, TX: 1}, 54},
		{"syn-ack with ip options", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, ipOpts: true, mss: 1380}), xdpTX, &event{1380, synAck}, Counters{SynAck: 1, TX: 1}, 54},
		{"syn-ack with vlan", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, vlan: true}), xdpTX, &event{0, synAck}, Counters{SynAck: 1, TX: 1}, 58},
		{"rst ack seq+1", replyFrame(t, p, replyOpts{rst: true, ack: true, ackNum: p.Seq + 1}), xdpDrop, &event{0, rstAck}, Counters{Rst: 1}, 0},
		{"rst ack seq", replyFrame(t, p, replyOpts{rst: true, ack: true, ackNum: p.Seq}), xdpDrop, &event{0, rstAck}, Counters{Rst: 1}, 0},
		{"wrong cookie", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 2}), xdpDrop, nil, Counters{BadCookie: 1}, 0},
		{"stale scan key", replyFrame(t, q, replyOpts{syn: true, ack: true, ackNum: q.Seq + 1}), xdpDrop, nil, Counters{BadCookie: 1}, 0},
		{"bare ack", replyFrame(t, p, replyOpts{ack: true, ackNum: p.Seq + 1}), xdpDrop, nil, Counters{BadCookie: 1}, 0},
		{"port outside window", replyFrame(t, packet.Probe{Src: ourIP, Dst: targetIP, Sport: 22, Dport: 5555}, replyOpts{syn: true, ack: true, ackNum: 1}), xdpPass, nil, Counters{Passed: 1}, 0},
		{"not our address", replyFrame(t, packet.Probe{Src: ourIP + 9, Dst: targetIP, Sport: p.Sport, Dport: 443}, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1}), xdpPass, nil, Counters{Passed: 1}, 0},
		{"truncated tcp", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, truncate: 14 + 20 + 10}), xdpPass, nil, Counters{Malformed: 1}, 0},
		{"truncated ip", replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, truncate: 14 + 12}), xdpPass, nil, Counters{Passed: 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counters(t, m)
			ret, out := runXDP(t, m, tt.frame)
			if ret != tt.ret {
				t.Fatalf("verdict %d, want %d", ret, tt.ret)
			}
			evs := readEvents(t, m)
			if want := map[bool]int{false: 0, true: 1}[tt.event != nil]; len(evs) != want {
				t.Fatalf("%d events, want %d", len(evs), want)
			}
			if tt.event != nil {
				e := evs[0]
				if e.Addr != targetIP || e.Daddr != ourIP || e.Sport != 443 || e.Dport != p.Sport || e.TTL != 55 || e.Window != 29200 || e.TimeNS == 0 ||
					e.MSS != tt.event.mss || e.Flags != tt.event.flags {
					t.Fatalf("event %+v, want MSS %d flags %#x", e, tt.event.mss, tt.event.flags)
				}
			}
			if d := counters(t, m).minus(before); d != tt.delta {
				t.Fatalf("counters moved by %+v, want %+v", d, tt.delta)
			}
			if tt.rstLen > 0 {
				checkRST(t, out[:tt.rstLen], p)
			}
		})
	}
}

// checkRST decodes the XDP_TX output with gopacket: an RST from us to the
// target, seq = the target's ack, valid checksums.
func checkRST(t *testing.T, frame []byte, p packet.Probe) {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tcp == nil {
		t.Fatalf("XDP_TX frame does not decode: %v", pkt)
	}
	if eth.SrcMAC.String() != ourMAC.String() || eth.DstMAC.String() != targetMAC.String() {
		t.Fatalf("MACs %v → %v", eth.SrcMAC, eth.DstMAC)
	}
	if !ip.SrcIP.Equal(ip4(ourIP)) || !ip.DstIP.Equal(ip4(targetIP)) || ip.IHL != 5 || ip.Length != 40 {
		t.Fatalf("IPv4 %v", ip)
	}
	if !tcp.RST || tcp.SYN || tcp.ACK || uint16(tcp.SrcPort) != p.Sport || tcp.DstPort != 443 || tcp.Seq != p.Seq+1 || len(tcp.Options) != 0 {
		t.Fatalf("TCP %v", tcp)
	}
	off := len(frame) - 40
	if packet.Checksum(frame[off:off+20], 0) != 0 {
		t.Fatal("IPv4 checksum wrong")
	}
	if packet.Checksum(frame[off+20:], packet.PseudoSum(ourIP, targetIP, 20)) != 0 {
		t.Fatal("TCP checksum wrong")
	}
}

// TestNoReset: without resets a valid SYN-ACK is reported and dropped, a
// wrong one only counted and dropped; neither is answered.
func TestNoReset(t *testing.T) {
	m, c := loadMatcher(t, 42, 1, false)
	p := probe(c, targetIP, 80, 0)
	for _, tt := range []struct {
		name   string
		ack    uint32
		events int
		delta  Counters
	}{{"valid", p.Seq + 1, 1, Counters{SynAck: 1}}, {"wrong cookie", p.Seq, 0, Counters{BadCookie: 1}}} {
		before := counters(t, m)
		if ret, _ := runXDP(t, m, replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: tt.ack})); ret != xdpDrop {
			t.Errorf("%s: verdict %d with --no-reset, want drop", tt.name, ret)
		}
		if evs := readEvents(t, m); len(evs) != tt.events {
			t.Errorf("%s: %d events, want %d", tt.name, len(evs), tt.events)
		}
		if d := counters(t, m).minus(before); d != tt.delta {
			t.Errorf("%s: counters moved by %+v, want %+v", tt.name, d, tt.delta)
		}
	}
}

// TestCookiesAgree: the C cookie accepts the Go cookie's SYN-ACK for 100,000
// random (target, port, copy) tuples and rejects each with ack off by one.
// Resets are on, so each verdict tells acceptance (XDP_TX) from rejection
// (XDP_DROP) for its own tuple: a wrong accept and a wrong reject cannot
// cancel out in the totals.
func TestCookiesAgree(t *testing.T) {
	const n = 100_000
	m, c := loadMatcher(t, 7, 3, true)
	rng := rand.New(rand.NewPCG(8, 9))
	frame := replyFrame(t, packet.Probe{Src: ourIP, Dst: targetIP, Sport: 61000, Dport: 80}, replyOpts{syn: true, ack: true})
	out := make([]byte, len(frame)+64)
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for i := range n {
		p := probe(c, rng.Uint32(), uint16(rng.Uint32()), rng.IntN(3))
		for _, wrong := range []uint32{0, 1} {
			setReply(frame, p, p.Seq+1+wrong)
			ret, err := m.Program().Run(&ebpf.RunOptions{Data: frame, DataOut: out})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[uint32]uint32{0: xdpTX, 1: xdpDrop}[wrong]; ret != want {
				t.Fatalf("tuple %d %+v wrong=%d: verdict %d", i, p, wrong, ret)
			}
		}
		if i%1000 == 999 { // drain the ring buffer now and then
			drain(rd)
		}
	}
	if cnt := counters(t, m); cnt != (Counters{SynAck: n, BadCookie: n, TX: n}) {
		t.Fatalf("counters %+v; want %d SYN-ACKs accepted and answered, %d rejected", cnt, n, n)
	}
}

func drain(rd *ringbuf.Reader) {
	var rec ringbuf.Record
	for {
		rd.SetDeadline(time.Now())
		if rd.ReadInto(&rec) != nil {
			return
		}
	}
}

// setReply rewrites a plain 54-byte SYN-ACK frame for probe p with ack.
// Checksums are left stale: the matcher does not verify them.
func setReply(f []byte, p packet.Probe, ack uint32) {
	be := func(o int, v uint32, n int) {
		for i := n - 1; i >= 0; i-- {
			f[o+i] = byte(v)
			v >>= 8
		}
	}
	be(26, p.Dst, 4)
	be(30, p.Src, 4)
	be(34, uint32(p.Dport), 2)
	be(36, uint32(p.Sport), 2)
	be(42, ack, 4)
}

// BenchmarkRingbufRead measures the receive path's user-space half: read
// one event from the ring buffer with ReadInto and decode it. Events are
// produced by the matcher itself, BPF_PROG_TEST_RUN with Repeat on a valid
// SYN-ACK, 4096 at a time (so the 8 MiB ring never fills).
func BenchmarkRingbufRead(b *testing.B) {
	m, c := loadMatcher(b, 7, 1, false)
	p := probe(c, targetIP, 80, 0)
	frame := replyFrame(b, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1})
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	const chunk = 4096
	var rec ringbuf.Record
	var e Event
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == 0 {
			b.StopTimer()
			if _, err := m.Program().Run(&ebpf.RunOptions{Data: frame, Repeat: chunk}); err != nil {
				b.Fatal(err)
			}
			n = chunk
			b.StartTimer()
		}
		if err := rd.ReadInto(&rec); err != nil {
			b.Fatal(err)
		}
		if err := DecodeEvent(rec.RawSample, &e); err != nil {
			b.Fatal(err)
		}
		n--
	}
	if e.Sport != 80 {
		b.Fatalf("decoded %+v", e)
	}
}

// TestGeneratedContract: DecodeEvent reads what the program wrote exactly
// as the bpf2go type of struct event lays it out, and the counters map has
// one slot per generated counter index.
func TestGeneratedContract(t *testing.T) {
	m, c := loadMatcher(t, 42, 1, false)
	if n := m.objs.Counters.MaxEntries(); n != uint32(numCounters) {
		t.Fatalf("counters map has %d entries, enum counter %d", n, numCounters)
	}
	p := probe(c, targetIP, 8443, 0)
	if ret, _ := runXDP(t, m, replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, mss: 1220})); ret != xdpDrop {
		t.Fatalf("verdict %d, want drop", ret)
	}
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rd.SetDeadline(time.Now())
	var rec ringbuf.Record
	if err := rd.ReadInto(&rec); err != nil {
		t.Fatal(err)
	}
	var g reachXDPEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &g); err != nil {
		t.Fatal(err)
	}
	var e Event
	if err := DecodeEvent(rec.RawSample, &e); err != nil {
		t.Fatal(err)
	}
	want := Event{TimeNS: g.Ts, Addr: g.Saddr, Ack: g.Ack, Sport: g.Sport, Dport: g.Dport, Window: g.Window, MSS: g.Mss, Flags: g.Flags, TTL: g.Ttl, Daddr: g.Daddr}
	if e != want || e.Addr != targetIP || e.Sport != 8443 || e.MSS != 1220 || e.Ack != p.Seq+1 || e.Daddr != ourIP {
		t.Fatalf("DecodeEvent %+v, generated type %+v", e, g)
	}
}
