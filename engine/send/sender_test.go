package send

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/target"
)

// capture is a Transport that keeps a copy of every frame sent.
type capture struct {
	mu     *sync.Mutex
	frames *[][]byte
	bufs   [][]byte
}

func (c *capture) Prepare(init func([]byte)) {
	for _, b := range c.bufs {
		init(b)
	}
}
func (c *capture) Slots(n int) ([][]byte, error) { return c.bufs[:n], nil }
func (c *capture) Send(n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bufs[:n] {
		*c.frames = append(*c.frames, bytes.Clone(b))
	}
	return nil
}
func (c *capture) Close() error { return nil }

type fixture struct {
	cfg    Config
	mu     sync.Mutex
	frames [][]byte
}

func newFixture(t *testing.T, threads, probes int, block []target.Range) *fixture {
	t.Helper()
	set := target.NewSet([]target.Range{{First: 0xC6130000, Last: 0xC61300FF}, {First: 0xC6130500, Last: 0xC6130509}})
	space, err := target.NewSpace(set, []uint16{22, 80, 443})
	if err != nil {
		t.Fatal(err)
	}
	cyc, err := permute.New(space.Len(), 17)
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := packet.NewCookie(17, packet.PortWindow{First: 61000, Count: 4536}, probes)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	f.cfg = Config{
		Space: space, Cycle: cyc, Layout: permute.Layout{Shards: 1, Threads: threads}, Cookie: cookie,
		Template:  packet.TemplateConfig{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}},
		Sources:   []uint32{0xC6120001, 0xC6120002},
		Blocklist: target.NewSet(block),
		Open: func(_ int, frameLen int, _ *atomic.Uint64) (Transport, error) {
			c := &capture{mu: &f.mu, frames: &f.frames, bufs: make([][]byte, MaxBatch)}
			for i := range c.bufs {
				c.bufs[i] = make([]byte, frameLen)
			}
			return c, nil
		},
	}
	return f
}

func mustSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSenderTSval: every frame carries the cookie's TSval for the time its
// batch left, counted from the thread's start on its clock: at 1,000 pps
// (batches of 5, one every 5 ms) batch k carries start value + 5k.
func TestSenderTSval(t *testing.T) {
	f := newFixture(t, 1, 1, nil)
	f.cfg.RatePPS = 1000
	clk := &fakeClock{now: 7e9}
	f.cfg.Clock = func() Clock { return clk }
	f.cfg.MaxTargets = 50
	s, err := New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.frames) != 50 {
		t.Fatalf("%d frames, want 50", len(f.frames))
	}
	base := f.cfg.Cookie.TSval(0)
	var r packet.Reply
	for i, fr := range f.frames {
		if err := packet.DecodeReply(fr, &r); err != nil {
			t.Fatal(err)
		}
		if want := base + uint32(i/5*5); !r.HasTS || r.TSval != want {
			t.Fatalf("frame %d: HasTS %v TSval %d, want %d", i, r.HasTS, r.TSval, want)
		}
	}
}

// TestSenderSendsEveryPairOnce checks, for several thread and probe counts,
// that every (address, port) pair gets exactly its copies, each with a valid
// cookie, its own source port and the source address chosen for it.
func TestSenderSendsEveryPairOnce(t *testing.T) {
	for _, threads := range []int{1, 3} {
		for _, probes := range []int{1, 2} {
			f := newFixture(t, threads, probes, nil)
			s, err := New(f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			type pair struct {
				dst  uint32
				port uint16
			}
			seen := map[pair]map[uint16]bool{}
			var r packet.Reply
			for _, fr := range f.frames {
				if err := packet.DecodeReply(fr, &r); err != nil {
					t.Fatal(err)
				}
				if r.Src != f.cfg.Sources[r.Dst%2] {
					t.Fatalf("source %x for %x", r.Src, r.Dst)
				}
				back := packet.Reply{Src: r.Dst, Dst: r.Src, Sport: r.Dport, Dport: r.Sport, Flags: packet.FlagSYN | packet.FlagACK, Ack: r.Seq + 1}
				if v := f.cfg.Cookie.Check(&back); v != packet.SynAck {
					t.Fatalf("cookie of %+v: %v", r, v)
				}
				k := pair{r.Dst, r.Dport}
				if seen[k] == nil {
					seen[k] = map[uint16]bool{}
				}
				seen[k][r.Sport] = true
			}
			if uint64(len(seen)) != f.cfg.Space.Len() || len(f.frames) != int(f.cfg.Space.Len())*probes {
				t.Fatalf("threads %d probes %d: %d pairs, %d frames; want %d pairs", threads, probes, len(seen), len(f.frames), f.cfg.Space.Len())
			}
			for k, ports := range seen {
				if len(ports) != probes {
					t.Fatalf("%v: %d distinct source ports, want %d", k, len(ports), probes)
				}
			}
			tot := s.Totals()
			if tot.Sent != uint64(len(f.frames)) || tot.Targets != f.cfg.Space.Len() || tot.Refused != 0 {
				t.Fatalf("totals %+v", tot)
			}
		}
	}
}

// TestSenderRefusesBlocked: a blocklisted destination that reaches the
// sender anyway is counted and never written.
func TestSenderRefusesBlocked(t *testing.T) {
	f := newFixture(t, 2, 2, []target.Range{{First: 0xC6130010, Last: 0xC613001F}})
	s := mustSender(t, f.cfg)
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var r packet.Reply
	for _, fr := range f.frames {
		if err := packet.DecodeReply(fr, &r); err != nil {
			t.Fatal(err)
		}
		if r.Dst >= 0xC6130010 && r.Dst <= 0xC613001F {
			t.Fatalf("blocked %x sent", r.Dst)
		}
	}
	if refused := s.Totals().Refused; refused != 16*3*2 {
		t.Fatalf("refused %d, want 96", refused)
	}
}

// TestSenderMaxTargetsAndResume stops after MaxTargets, then resumes from
// the checkpoint positions: together the two runs send every pair once.
func TestSenderMaxTargetsAndResume(t *testing.T) {
	f := newFixture(t, 2, 1, nil)
	f.cfg.MaxTargets = 301
	s := mustSender(t, f.cfg)
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.frames) != 301 {
		t.Fatalf("sent %d frames, want 301", len(f.frames))
	}
	first := len(f.frames)
	f.cfg.MaxTargets = 0
	f.cfg.Resume = s.Positions()
	s2 := mustSender(t, f.cfg)
	if err := s2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]uint32]int{}
	var r packet.Reply
	for _, fr := range f.frames {
		if err := packet.DecodeReply(fr, &r); err != nil {
			t.Fatal(err)
		}
		seen[[2]uint32{r.Dst, uint32(r.Dport)}]++
	}
	if uint64(len(seen)) != f.cfg.Space.Len() || len(f.frames) != int(f.cfg.Space.Len()) {
		t.Fatalf("after resume: %d pairs in %d frames (%d before), want %d once each", len(seen), len(f.frames), first, f.cfg.Space.Len())
	}
}

// TestSenderNextHop: on-link targets get their own MAC, routed ones the
// gateway's, and unresolved on-link targets are skipped and counted.
func TestSenderNextHop(t *testing.T) {
	f := newFixture(t, 2, 1, nil)
	gw := [6]byte{2, 0, 0, 0, 0, 2}
	f.cfg.NextHop = func(dst uint32) ([6]byte, bool) {
		switch {
		case dst>>8 == 0xC61305: // 198.19.5.0/24: on-link
			if dst&0xff == 9 {
				return [6]byte{}, false // no ARP answer
			}
			return [6]byte{2, 0, 0, 0, 5, byte(dst)}, true
		}
		return gw, true
	}
	s := mustSender(t, f.cfg)
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var r packet.Reply
	for _, fr := range f.frames {
		if err := packet.DecodeReply(fr, &r); err != nil {
			t.Fatal(err)
		}
		want := gw
		if r.Dst>>8 == 0xC61305 {
			want = [6]byte{2, 0, 0, 0, 5, byte(r.Dst)}
		}
		if !bytes.Equal(fr[:6], want[:]) {
			t.Fatalf("frame to %x has MAC %x, want %x", r.Dst, fr[:6], want)
		}
		if r.Dst == 0xC6130509 {
			t.Fatal("unresolved on-link target probed")
		}
	}
	if tot := s.Totals(); tot.NoRoute != 3 || tot.Sent != uint64(len(f.frames)) || len(f.frames) != int(f.cfg.Space.Len())-3 {
		t.Fatalf("totals %+v with %d frames", tot, len(f.frames))
	}
}

func TestDryRunPrintsEveryProbe(t *testing.T) {
	f := newFixture(t, 2, 1, nil)
	var out bytes.Buffer
	var mu sync.Mutex
	f.cfg.Open = func(_ int, frameLen int, _ *atomic.Uint64) (Transport, error) {
		return NewDryRun(&out, &mu, frameLen), nil
	}
	s := mustSender(t, f.cfg)
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if uint64(len(lines)) != f.cfg.Space.Len() {
		t.Fatalf("%d lines, want %d", len(lines), f.cfg.Space.Len())
	}
	if !strings.Contains(lines[0], " flags=S seq=") || !strings.HasPrefix(lines[0], "198.18.0.") {
		t.Fatalf("line %q", lines[0])
	}
}
