package recv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/reachscan/reach/bpf"
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
}

// NewXDP loads the matcher with cfg and attaches it to ifi.
func NewXDP(ifi *net.Interface, cfg bpf.Config, space *target.Space) (*XDP, error) {
	m, err := bpf.Load(cfg)
	if err != nil {
		return nil, err
	}
	mode, err := m.Attach(ifi)
	if err != nil {
		m.Close()
		return nil, err
	}
	rd, err := ringbuf.NewReader(m.Events())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	x := &XDP{m: m, rd: rd, ready: make(chan struct{}), mode: "xdp/" + mode}
	x.f = newFilter(space, &x.stats)
	return x, nil
}

// Ready is closed when the program is attached and the reader runs.
func (x *XDP) Ready() <-chan struct{} { return x.ready }

// Stats are the receiver's counters.
func (x *XDP) Stats() *Stats { return &x.stats }

// Mode is "xdp/driver" or "xdp/generic".
func (x *XDP) Mode() string { return x.mode }

// Counters are the matcher's in-kernel counters.
func (x *XDP) Counters() (bpf.Counters, error) { return x.m.Counters() }

// pollEvery bounds how long Run waits for an event before looking at ctx.
const pollEvery = 100 * time.Millisecond

// Run reads events with ReadInto (no allocation per event) until ctx ends.
func (x *XDP) Run(ctx context.Context, emit func(*Hit)) error {
	close(x.ready)
	var rec ringbuf.Record
	var ev bpf.Event
	var hit Hit
	for {
		if ctx.Err() != nil {
			return nil
		}
		x.rd.SetDeadline(time.Now().Add(pollEvery))
		if err := x.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) {
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
		hit = Hit{Addr: ev.Addr, Port: ev.Sport, Status: st, TTL: ev.TTL, Window: ev.Window, MSS: ev.MSS, TimeNS: ev.TimeNS}
		emit(&hit)
	}
}

// Close detaches the program and releases the ring buffer.
func (x *XDP) Close() error {
	if c, err := x.m.Counters(); err == nil {
		x.stats.Dropped.Store(c.RingbufFull)
	}
	return errors.Join(x.rd.Close(), x.m.Close())
}
