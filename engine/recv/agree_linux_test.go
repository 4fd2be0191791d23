package recv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/reachscan/reach/bpf"
	"github.com/reachscan/reach/engine/packet"
)

// agreeFrame builds the SYN-ACK (or RST) a target sends back to probe p,
// with IPv4 options ipOpts and TCP options tcpOpts (raw bytes, a multiple
// of 4), then applies edit to the frame (offsets: IPv4 at 14).
func agreeFrame(t *testing.T, p packet.Probe, flags uint8, ack uint32, ipOpts, tcpOpts []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 52, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{byte(p.Dst >> 24), byte(p.Dst >> 16), byte(p.Dst >> 8), byte(p.Dst)}, DstIP: net.IP{byte(p.Src >> 24), byte(p.Src >> 16), byte(p.Src >> 8), byte(p.Src)}}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.Dport), DstPort: layers.TCPPort(p.Sport), Seq: 99, Ack: ack, Window: 28960,
		SYN: flags&packet.FlagSYN != 0, ACK: flags&packet.FlagACK != 0, RST: flags&packet.FlagRST != 0}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// splice the raw options in, so that malformed ones can be built
	f := append([]byte(nil), b[:34]...)
	f = append(f, ipOpts...)
	f = append(f, b[34:54]...)
	f = append(f, tcpOpts...)
	f[14] = 0x40 | byte((20+len(ipOpts))/4)
	binary.BigEndian.PutUint16(f[16:], uint16(40+len(ipOpts)+len(tcpOpts)))
	tcpAt := 34 + len(ipOpts)
	f[tcpAt+12] = byte((20+len(tcpOpts))/4) << 4
	if edit != nil {
		f = edit(f)
	}
	return f
}

// TestReceiversAgree runs the same frames through both receivers' rules:
// the XDP matcher (BPF_PROG_TEST_RUN, reported = a ring-buffer event) and
// the AF_PACKET path (the classic BPF filter, then DecodeReply and the
// cookie check in Go). Both must report exactly the same frames, with the
// same MSS, and the filter must never drop a frame Go would report. The
// rule (engine/packet.DecodeReply, bpf/xdp.c): 20 ≤ IHL·4 ≤ total length ≤
// frame; IPv4 options well-formed inside the header; the TCP header inside
// the total length; TCP options well-formed inside the TCP header.
func TestReceiversAgree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the XDP matcher and BPF_PROG_TEST_RUN need CAP_BPF and CAP_NET_ADMIN")
	}
	const ours, target = 0xC6120001, 0xC6130207
	w := packet.PortWindow{First: 61000, Count: 4536}
	c, err := packet.NewCookie(5, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	k0, k1 := c.Key()
	m, err := bpf.Load(bpf.Config{Key0: k0, Key1: k1, SrcFirst: ours, SrcLast: ours, WindowFirst: w.First, WindowCount: w.Count, Probes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	vm := filterVM(t, FilterConfig{SrcFirst: ours, SrcLast: ours, Window: w})

	p := packet.Probe{Src: ours, Dst: target, Dport: 443}
	c.Fill(&p, 0)
	const synAck, rst uint8 = packet.FlagSYN | packet.FlagACK, packet.FlagRST | packet.FlagACK
	nops := []byte{1, 1, 1, 0}      // NOP NOP NOP EOL
	mss := []byte{2, 4, 0x05, 0x1c} // MSS 1308
	linux := []byte{2, 4, 0x05, 0x1c, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	manyNOPs := append(make([]byte, 36), mss...) // 36 NOPs, then the MSS: 40 option bytes
	for i := range 36 {
		manyNOPs[i] = 1
	}
	set := func(off int, v ...byte) func([]byte) []byte {
		return func(f []byte) []byte { copy(f[off:], v); return f }
	}
	tests := []struct {
		name    string
		frame   []byte
		report  bool
		wantMSS uint16
	}{
		{"syn-ack", agreeFrame(t, p, synAck, p.Seq+1, nil, nil, nil), true, 0},
		{"syn-ack, Linux options", agreeFrame(t, p, synAck, p.Seq+1, nil, linux, nil), true, 1308},
		{"rst", agreeFrame(t, p, rst, p.Seq+1, nil, nil, nil), true, 0},
		{"ip options NOP NOP NOP EOL", agreeFrame(t, p, synAck, p.Seq+1, nops, mss, nil), true, 1308},
		{"ip option record-route of 8", agreeFrame(t, p, synAck, p.Seq+1, []byte{7, 7, 4, 0, 0, 0, 0, 0}, mss, nil), true, 1308},
		{"Ethernet padding after the total length", agreeFrame(t, p, synAck, p.Seq+1, nil, nil, func(f []byte) []byte { return append(f, 0, 0, 0, 0, 0, 0) }), true, 0},
		{"MSS after 36 NOPs", agreeFrame(t, p, synAck, p.Seq+1, nil, manyNOPs, nil), true, 1308},
		{"ip option running past the header", agreeFrame(t, p, synAck, p.Seq+1, []byte{7, 9, 4, 0}, nil, nil), false, 0},
		{"ip option of length 2", agreeFrame(t, p, synAck, p.Seq+1, []byte{0x44, 2, 1, 0}, nil, nil), false, 0},
		{"ip option cut after its type", agreeFrame(t, p, synAck, p.Seq+1, []byte{1, 1, 1, 7}, nil, nil), false, 0},
		{"ihl past the total length", agreeFrame(t, p, synAck, p.Seq+1, nops, nil, set(16, 0, 22)), false, 0},
		{"total length past the frame", agreeFrame(t, p, synAck, p.Seq+1, nil, nil, set(16, 0x01, 0x00)), false, 0},
		{"tcp header past the total length", agreeFrame(t, p, synAck, p.Seq+1, nil, mss, set(16, 0, 40)), false, 0},
		{"ihl 4", agreeFrame(t, p, synAck, p.Seq+1, nil, nil, set(14, 0x44)), false, 0},
		{"tcp data offset 4", agreeFrame(t, p, synAck, p.Seq+1, nil, nil, set(46, 0x40)), false, 0},
		{"tcp option of length 1", agreeFrame(t, p, synAck, p.Seq+1, nil, []byte{4, 1, 1, 0}, nil), false, 0},
		{"tcp option running past the header", agreeFrame(t, p, synAck, p.Seq+1, nil, []byte{1, 1, 8, 10}, nil), false, 0},
		{"MSS of length 3", agreeFrame(t, p, synAck, p.Seq+1, nil, []byte{2, 3, 5, 0}, nil), false, 0},
		{"window scale of length 4", agreeFrame(t, p, synAck, p.Seq+1, nil, []byte{3, 4, 7, 0}, nil), false, 0},
		{"wrong cookie", agreeFrame(t, p, synAck, p.Seq+2, nil, nil, nil), false, 0},
	}
	// judge runs frame through both receivers: whether each reports it,
	// and what each reported.
	judge := func(t *testing.T, frame []byte) (xdpReports, afReports bool, ev bpf.Event, r packet.Reply, why string) {
		t.Helper()
		ret, err := m.Program().Run(&ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+64)})
		if err != nil {
			t.Fatal(err)
		}
		var evs []bpf.Event
		var rec ringbuf.Record
		rd.SetDeadline(time.Now()) // events are in the ring when Run returns
		for {
			err := rd.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var e bpf.Event
			if err := bpf.DecodeEvent(rec.RawSample, &e); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		if len(evs) > 1 {
			t.Fatalf("%d events for one frame", len(evs))
		}
		if len(evs) == 1 {
			xdpReports, ev = true, evs[0]
		}
		// AF_PACKET: the classic filter, then Go
		n, err := vm.Run(frame)
		if err != nil {
			t.Fatal(err)
		}
		decodeErr := packet.DecodeReply(frame, &r)
		v := c.Check(&r)
		goReports := decodeErr == nil && (v == packet.SynAck || v == packet.Reset)
		if goReports && n == 0 {
			t.Fatalf("the classic filter drops a frame Go reports: %x", frame)
		}
		return xdpReports, goReports && n > 0, ev, r, fmt.Sprintf("XDP verdict %d, Go decode %v, cookie %v", ret, decodeErr, v)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xdpReports, afReports, ev, r, why := judge(t, tt.frame)
			if xdpReports != tt.report || afReports != tt.report {
				t.Fatalf("XDP reports %v, AF_PACKET %v (%s); want %v for both", xdpReports, afReports, why, tt.report)
			}
			if tt.report && (ev.MSS != tt.wantMSS || r.MSS != tt.wantMSS || ev.Window != r.Window || ev.TTL != r.TTL || ev.Flags != r.Flags) {
				t.Fatalf("XDP event %+v, Go reply %+v; want MSS %d in both", ev, r, tt.wantMSS)
			}
		})
	}
	// random option bytes, biased towards the kinds and lengths the rule
	// names: both receivers report the same frames, with the same MSS
	t.Run("random options", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 13))
		pick := []byte{0, 1, 2, 3, 4, 8, 7, 0x44, 1, 1}
		opts := func(max int) []byte {
			o := make([]byte, 4*rng.IntN(max/4+1))
			for i := range o {
				switch rng.IntN(3) {
				case 0:
					o[i] = pick[rng.IntN(len(pick))]
				case 1:
					o[i] = byte(rng.IntN(12))
				default:
					o[i] = byte(rng.Uint32())
				}
			}
			return o
		}
		reported := 0
		for i := range 20_000 {
			frame := agreeFrame(t, p, synAck, p.Seq+1, opts(40), opts(40), nil)
			xdpReports, afReports, ev, r, why := judge(t, frame)
			if xdpReports != afReports || xdpReports && ev.MSS != r.MSS {
				t.Fatalf("frame %d %x: XDP reports %v (MSS %d), AF_PACKET %v (MSS %d); %s", i, frame, xdpReports, ev.MSS, afReports, r.MSS, why)
			}
			if xdpReports {
				reported++
			}
		}
		if reported < 500 || reported > 19_500 { // 804 with this seed
			t.Fatalf("%d of 20,000 random frames reported: the mix no longer tests both sides of the rule", reported)
		}
	})
}
