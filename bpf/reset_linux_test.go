package bpf

import (
	"bytes"
	"os"
	"testing"

	"github.com/reachscan/reach/engine/packet"
)

// TestResetPaths runs one valid SYN-ACK through the matcher loaded with
// each way of answering it: the event is reported every time; XDP_TX sends
// the RST back, the kernel path passes the SYN-ACK on untouched (the kernel
// answers it), no reset drops it.
func TestResetPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading XDP programs and BPF_PROG_TEST_RUN need CAP_BPF and CAP_NET_ADMIN")
	}
	for _, tc := range []struct {
		name  string
		reset bool
		path  ResetPath
		ret   uint32
		tx    uint64 // RSTs counted as sent with XDP_TX
	}{
		{"auto is XDP_TX for the loader", true, ResetAuto, xdpTX, 1},
		{"XDP_TX", true, ResetXDPTX, xdpTX, 1},
		{"kernel", true, ResetKernel, xdpPass, 0},
		{"none", false, ResetKernel, xdpDrop, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := packet.NewCookie(42, window, 1)
			if err != nil {
				t.Fatal(err)
			}
			k0, k1 := c.Key()
			m, err := Load(Config{Key0: k0, Key1: k1, SrcFirst: ourIP, SrcLast: ourIP, WindowFirst: window.First, WindowCount: window.Count,
				Probes: 1, SendReset: tc.reset, ResetPath: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			p := probe(c, targetIP, 443, 0)
			frame := replyFrame(t, p, replyOpts{syn: true, ack: true, ackNum: p.Seq + 1, mss: 1380})
			ret, out := runXDP(t, m, frame)
			if ret != tc.ret {
				t.Fatalf("verdict %d, want %d", ret, tc.ret)
			}
			if evs := readEvents(t, m); len(evs) != 1 || evs[0].Addr != targetIP || evs[0].Sport != 443 {
				t.Errorf("events %+v, want the one SYN-ACK", evs)
			}
			cs, err := m.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if cs.SynAck != 1 || cs.TX != tc.tx || cs.ResetFailed != 0 {
				t.Errorf("counters %+v, want synack 1, tx %d", cs, tc.tx)
			}
			switch ret {
			case xdpTX:
				checkRST(t, out[:54], p)
			case xdpPass:
				if !bytes.Equal(out[:len(frame)], frame) {
					t.Errorf("passed SYN-ACK was changed")
				}
			}
		})
	}
}
