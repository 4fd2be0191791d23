package recv

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/target"
)

func TestDedup(t *testing.T) {
	d := NewDedup()
	for _, i := range []uint64{0, 1, 63, 64, pageBits - 1, pageBits, 1<<48 - 1} {
		if !d.Add(i) {
			t.Fatalf("%d new but reported seen", i)
		}
		if d.Add(i) {
			t.Fatalf("%d seen but reported new", i)
		}
	}
	if d.Bytes() != 3*pageBits/8 {
		t.Fatalf("%d bytes for 3 pages", d.Bytes())
	}
}

// filterVM runs the classic BPF receive filter for cfg in user space.
func filterVM(t *testing.T, cfg FilterConfig) *bpf.VM {
	t.Helper()
	raw, err := Filter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range raw {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestFilterAccepts(t *testing.T) {
	ourIP, target := uint32(0xC6120001), uint32(0xC6130101)
	w := packet.PortWindow{First: 61000, Count: 100}
	vm := filterVM(t, FilterConfig{SrcFirst: ourIP, SrcLast: ourIP + 1, Window: w})
	frame := func(dst uint32, dport uint16, syn, ack, rst bool, ipOpts bool, frag bool, proto layers.IPProtocol) []byte {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 60, Protocol: proto, SrcIP: net.IP{198, 19, 1, 1}, DstIP: net.IP{byte(dst >> 24), byte(dst >> 16), byte(dst >> 8), byte(dst)}}
		if ipOpts {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		if frag {
			ip.FragOffset = 10
		}
		buf := gopacket.NewSerializeBuffer()
		var l4 gopacket.SerializableLayer = &layers.TCP{SrcPort: 80, DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, RST: rst}
		if proto == layers.IPProtocolUDP {
			l4 = &layers.UDP{SrcPort: 80, DstPort: layers.UDPPort(dport)}
		}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, ip, l4); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tcp := layers.IPProtocolTCP
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"syn-ack", frame(ourIP, 61000, true, true, false, false, false, tcp), true},
		{"syn-ack second source, last port", frame(ourIP+1, 61099, true, true, false, false, false, tcp), true},
		{"rst", frame(ourIP, 61050, false, true, true, false, false, tcp), true},
		{"bare rst", frame(ourIP, 61050, false, false, true, false, false, tcp), true},
		{"syn-ack with ip options", frame(ourIP, 61000, true, true, false, true, false, tcp), true},
		{"ack only", frame(ourIP, 61000, false, true, false, false, false, tcp), false},
		{"syn only", frame(ourIP, 61000, true, false, false, false, false, tcp), false},
		{"port below window", frame(ourIP, 60999, true, true, false, false, false, tcp), false},
		{"port above window", frame(ourIP, 61100, true, true, false, false, false, tcp), false},
		{"other address", frame(target, 61000, true, true, false, false, false, tcp), false},
		{"fragment", frame(ourIP, 61000, true, true, false, false, true, tcp), false},
		{"udp", frame(ourIP, 61000, false, false, false, false, false, layers.IPProtocolUDP), false},
	}
	for _, tt := range tests {
		n, err := vm.Run(tt.frame)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (n > 0) != tt.want {
			t.Errorf("%s: filter returned %d, want accept=%v", tt.name, n, tt.want)
		}
	}
}

func TestFilterRejectsForeign(t *testing.T) {
	set := target.NewSet([]target.Range{{First: 0xC6130000, Last: 0xC61300FF}})
	space, err := target.NewSpace(set, []uint16{80, 443})
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	f := newFilter(space, &st)
	if _, ok := f.accept(0xC6130001, 22, packet.FlagSYN|packet.FlagACK); ok {
		t.Fatal("untargeted port accepted")
	}
	if _, ok := f.accept(0xC6140001, 80, packet.FlagSYN|packet.FlagACK); ok {
		t.Fatal("untargeted address accepted")
	}
	if s, ok := f.accept(0xC6130001, 80, packet.FlagSYN|packet.FlagACK); !ok || s != Open {
		t.Fatal("valid SYN-ACK refused")
	}
	if _, ok := f.accept(0xC6130001, 80, packet.FlagSYN|packet.FlagACK); ok {
		t.Fatal("duplicate emitted")
	}
	if s, ok := f.accept(0xC6130002, 443, packet.FlagRST|packet.FlagACK); !ok || s != Closed {
		t.Fatal("valid RST refused")
	}
	if st.Foreign.Load() != 2 || st.Duplicates.Load() != 1 || st.Open.Load() != 1 || st.Closed.Load() != 1 || st.Replies.Load() != 5 {
		t.Fatalf("stats foreign %d dup %d open %d closed %d replies %d", st.Foreign.Load(), st.Duplicates.Load(), st.Open.Load(), st.Closed.Load(), st.Replies.Load())
	}
}
