package recv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/safchain/ethtool"

	"golang.org/x/sys/unix"

	"github.com/reachscan/reach/bpf"
	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/target"
)

// XDP receives hits from the XDP matcher's ring buffer.
type XDP struct {
	m     *bpf.Matcher
	rd    *ringbuf.Reader
	f     *filter
	stats Stats
	ready chan struct{}
	mode  string
	// ifname and txErr0 (its XDP_TX error count at attach) feed TXErrors.
	ifname string
	txErr0 uint64
	cookie *packet.Cookie
	resets ResetInfo
	// wall0 and mono0 are the same instant on the wall clock and on
	// CLOCK_MONOTONIC (bpf_ktime_get_ns), to date events.
	wall0 time.Time
	mono0 uint64
}

func monotonicNS() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// NewXDP loads the matcher with cfg and attaches it to ifi. cookie tells
// which probe copy a reply answers. It refuses an interface where another
// reach scan's matcher is attached (ErrInterfaceBusy), also when that scan
// attached first by a hair.
func NewXDP(ifi *net.Interface, cfg bpf.Config, cookie *packet.Cookie, space *target.Space) (*XDP, error) {
	if _, err := CheckInterface(ifi); err != nil {
		return nil, err
	}
	resets := ResetInfo{Path: "none", Delivers: true}
	if cfg.SendReset {
		resets.Delivers, resets.Why = xdpTXDelivers(ifi)
		if cfg.ResetPath == bpf.ResetAuto {
			cfg.ResetPath = bpf.ResetXDPTX
			if !resets.Delivers {
				cfg.ResetPath = bpf.ResetKernel
			}
		}
		resets.Path = cfg.ResetPath.String()
		if cfg.ResetPath == bpf.ResetKernel {
			resets.Delivers = true // the kernel's RSTs leave like any other frame
		}
	}
	m, err := bpf.Load(cfg)
	if err != nil {
		return nil, err
	}
	mode, err := m.Attach(ifi)
	if err != nil {
		m.Close()
		// a program attached meanwhile or before: say which
		other, cerr := CheckInterface(ifi)
		if cerr != nil {
			return nil, cerr
		}
		if other != nil {
			return nil, fmt.Errorf("%w (%s holds the interface)", err, other)
		}
		return nil, err
	}
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	x := &XDP{m: m, rd: rd, ready: make(chan struct{}), mode: "xdp/" + mode, ifname: ifi.Name, cookie: cookie, resets: resets,
		wall0: time.Now(), mono0: monotonicNS()}
	x.txErr0, _ = xdpTXErrors(ifi.Name)
	x.f = newFilter(space, &x.stats)
	return x, nil
}

// ResetInfo says how the XDP receiver answers valid SYN-ACKs with RSTs.
type ResetInfo struct {
	// Path is "xdp_tx" (rewritten in place and sent back by the matcher),
	// "kernel" (passed on to the host's kernel, which answers), or "none".
	Path string
	// Delivers is false when the RSTs go through XDP_TX on an interface
	// where XDP_TX does not deliver (a veth whose peer runs no XDP
	// program): how many left is then unknown. Why says why.
	Delivers bool
	Why      string
}

// Resets says how valid SYN-ACKs are answered: with bpf.ResetAuto, XDP_TX
// where it delivers and the kernel elsewhere (Why says why).
func (x *XDP) Resets() ResetInfo { return x.resets }

// Ready is closed when the program is attached and the reader runs.
func (x *XDP) Ready() <-chan struct{} { return x.ready }

// Stats are the receiver's counters.
func (x *XDP) Stats() *Stats { return &x.stats }

// Mode is "xdp/driver" or "xdp/generic".
func (x *XDP) Mode() string { return x.mode }

// Counters are the matcher's in-kernel counters.
func (x *XDP) Counters() (bpf.Counters, error) { return x.m.Counters() }

// Run reads events with ReadInto (no allocation per event) until ctx ends.
// It blocks in the kernel between events (no polling): ending ctx closes the
// reader, which wakes it.
func (x *XDP) Run(ctx context.Context, emit func(*Hit)) error {
	close(x.ready)
	stop := context.AfterFunc(ctx, func() { x.rd.Close() })
	defer stop()
	var rec ringbuf.Record
	var ev bpf.Event
	var hit Hit
	for {
		if err := x.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if bpf.DecodeEvent(rec.RawSample, &ev) != nil {
			continue
		}
		st, ok := x.f.accept(ev.Addr, ev.Sport, ev.Flags)
		if !ok {
			continue
		}
		r := packet.Reply{Src: ev.Addr, Sport: ev.Sport, Dst: ev.Daddr, Dport: ev.Dport}
		hit = Hit{Addr: ev.Addr, Port: ev.Sport, Status: st, TTL: ev.TTL, Window: ev.Window, MSS: ev.MSS,
			Probe: uint8(x.cookie.Copy(&r)), Time: x.wall0.Add(time.Duration(int64(ev.TimeNS - x.mono0)))}
		emit(&hit)
	}
}

// TXErrors is how many XDP_TX transmissions (the RSTs answering SYN-ACKs)
// the interface failed since attach, from its driver statistics (on veth,
// rx_queue_N_xdp_tx_errors: the peer needs GRO on or an XDP program of its
// own). ok is false when the driver reports no such counter.
func (x *XDP) TXErrors() (n uint64, ok bool) {
	v, err := xdpTXErrors(x.ifname)
	if err != nil {
		return 0, false
	}
	return v - x.txErr0, true
}

// xdpTXErrors sums the driver statistics named *xdp_tx_errors.
func xdpTXErrors(ifname string) (uint64, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return 0, err
	}
	defer e.Close()
	st, err := e.Stats(ifname)
	if err != nil {
		return 0, err
	}
	var n uint64
	found := false
	for k, v := range st {
		if strings.HasSuffix(k, "xdp_tx_errors") {
			n += v
			found = true
		}
	}
	if !found {
		return 0, errors.New("no xdp_tx_errors statistic")
	}
	return n, nil
}

// Close detaches the program and releases the ring buffer.
func (x *XDP) Close() error {
	if c, err := x.m.Counters(); err == nil {
		x.stats.Dropped.Store(c.RingbufFull)
	}
	x.rd.Close() // may already be closed by Run
	return x.m.Close()
}
