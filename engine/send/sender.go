package send

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/target"
)

// Config is what the sender threads need. Every field is required unless
// marked otherwise.
type Config struct {
	Space  *target.Space
	Cycle  *permute.Cycle
	Layout permute.Layout
	// Resume holds one position per thread to continue from (optional).
	Resume []permute.Position
	Cookie *packet.Cookie
	// Template builds each thread's SYN template.
	Template packet.TemplateConfig
	// Sources are the source addresses (host order); a target's source is
	// Sources[dst mod len].
	Sources []uint32
	// NextHop, when set, gives the destination MAC of targets on the local
	// subnet (ok = false: on-link but unresolved, so the probe is skipped
	// and counted); routed targets return the gateway's MAC.
	NextHop func(dst uint32) (mac [6]byte, ok bool)
	// Blocklist is checked once more for every frame right before it is
	// written; a hit is refused and counted, never sent.
	Blocklist interface{ Contains(addr uint32) bool }
	// RatePPS is the send rate in packets per second across all threads
	// (copies from --probes included); 0 means unlimited.
	RatePPS float64
	// MaxTargets stops the shard after this many targets (0: no limit).
	MaxTargets uint64
	// Open opens thread t's transport for frames of frameLen bytes; the
	// transport counts frames the kernel refused in drops.
	Open func(t int, frameLen int, drops *atomic.Uint64) (Transport, error)
	// Clock paces the threads (optional; the real clock by default).
	Clock func() Clock
}

// Counters are one thread's totals, updated once per batch.
type Counters struct {
	Sent    atomic.Uint64 // frames handed to the kernel
	Targets atomic.Uint64 // (address, port) pairs done
	Refused atomic.Uint64 // frames stopped by the last blocklist check
	Drops   atomic.Uint64 // frames the kernel refused (ENOBUFS)
	NoRoute atomic.Uint64 // probes skipped: on-link target without a MAC
	_       [24]byte      // keep threads' counters on separate cache lines
}

// Sender runs the sender threads of one shard.
type Sender struct {
	cfg      Config
	counters []Counters
	mu       sync.Mutex
	pos      []permute.Position
	budget   atomic.Int64 // targets left under MaxTargets
}

// New checks cfg and prepares one counter set per thread.
func New(cfg Config) (*Sender, error) {
	switch {
	case cfg.Space == nil || cfg.Cycle == nil || cfg.Cookie == nil || cfg.Open == nil || cfg.Blocklist == nil:
		return nil, errors.New("send: incomplete config")
	case len(cfg.Sources) == 0:
		return nil, errors.New("send: no source address")
	case cfg.Resume != nil && len(cfg.Resume) != cfg.Layout.Threads:
		return nil, fmt.Errorf("send: %d resume positions for %d threads", len(cfg.Resume), cfg.Layout.Threads)
	}
	if err := cfg.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = ThreadClock
	}
	s := &Sender{cfg: cfg, counters: make([]Counters, cfg.Layout.Threads), pos: make([]permute.Position, cfg.Layout.Threads)}
	if cfg.MaxTargets > 0 {
		s.budget.Store(int64(cfg.MaxTargets))
	} else {
		s.budget.Store(-1)
	}
	return s, nil
}

// Counters returns the live per-thread counters.
func (s *Sender) Counters() []Counters { return s.counters }

// Totals are the sums of every thread's counters.
type Totals struct {
	Sent, Targets, Refused, Drops, NoRoute uint64
}

// Totals sums the counters of every thread.
func (s *Sender) Totals() Totals {
	var t Totals
	for i := range s.counters {
		c := &s.counters[i]
		t.Sent += c.Sent.Load()
		t.Targets += c.Targets.Load()
		t.Refused += c.Refused.Load()
		t.Drops += c.Drops.Load()
		t.NoRoute += c.NoRoute.Load()
	}
	return t
}

// Positions returns each thread's checkpoint position: every target before
// it has been handed to the kernel in full (all its copies).
func (s *Sender) Positions() []permute.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]permute.Position(nil), s.pos...)
}

// Run sends every probe of the shard and returns when all threads are done
// or ctx is cancelled. The first thread error cancels the others.
func (s *Sender) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, s.cfg.Layout.Threads)
	var wg sync.WaitGroup
	for t := range s.cfg.Layout.Threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.thread(ctx, t); err != nil {
				errs[t] = fmt.Errorf("sender thread %d: %w", t, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// take reserves up to want targets from the MaxTargets budget and returns
// how many it got (want when there is no limit).
func (s *Sender) take(want int) int {
	for {
		b := s.budget.Load()
		if b < 0 {
			return want
		}
		n := min(b, int64(want))
		if s.budget.CompareAndSwap(b, b-n) {
			return int(n)
		}
	}
}

func (s *Sender) thread(ctx context.Context, t int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := &s.cfg
	pos := permute.Position{}
	if cfg.Resume != nil {
		pos = cfg.Resume[t]
	}
	run, err := cfg.Cycle.Resume(cfg.Layout, t, pos)
	if err != nil {
		return err
	}
	s.setPos(t, run.Position())
	tmpl, err := packet.NewTemplate(cfg.Template)
	if err != nil {
		return err
	}
	c := &s.counters[t]
	tr, err := cfg.Open(t, tmpl.Len(), &c.Drops)
	if err != nil {
		return err
	}
	defer tr.Close()
	tr.Prepare(tmpl.Init)

	threads := cfg.Layout.Threads
	rate := cfg.RatePPS / float64(threads)
	clock := cfg.Clock()
	th := NewThrottle(rate, clock)
	start := clock.Now()
	probes := cfg.Cookie.Probes()
	batch := th.Batch()
	if batch < probes && rate > 0 {
		batch = min(probes, MaxBatch)
	}
	batch -= batch % probes // whole targets per batch, so a checkpoint never splits one
	if batch == 0 {
		batch = probes
	}
	nsrc := uint32(len(cfg.Sources))
	var sent uint64
	var p packet.Probe
	for {
		if ctx.Err() != nil {
			return nil
		}
		want := s.take(batch / probes)
		if want == 0 {
			return nil
		}
		if !th.Wait(sent, ctx.Done()) {
			if s.cfg.MaxTargets > 0 {
				s.budget.Add(int64(want)) // nothing of this batch was taken
			}
			return nil
		}
		slots, err := tr.Slots(want * probes)
		if err != nil {
			return err
		}
		p.TSval = cfg.Cookie.TSval(clock.Now() - start) // one tick a millisecond, per batch
		n, targets, refused, noRoute := 0, 0, 0, 0
		for targets < want {
			idx, ok := run.Next()
			if !ok {
				break
			}
			targets++
			dst, port := cfg.Space.Pair(idx)
			if cfg.Blocklist.Contains(dst) {
				refused += probes
				continue
			}
			var mac [6]byte
			if cfg.NextHop != nil {
				var ok bool
				if mac, ok = cfg.NextHop(dst); !ok {
					noRoute += probes
					continue
				}
			}
			p.Src, p.Dst, p.Dport = cfg.Sources[dst%nsrc], dst, port
			off := cfg.Cookie.Offset(&p)
			for k := range probes {
				cfg.Cookie.FillFrom(&p, off, k)
				tmpl.Patch(slots[n], &p)
				if cfg.NextHop != nil {
					copy(slots[n][:6], mac[:])
				}
				n++
			}
		}
		if n > 0 {
			if err := tr.Send(n); err != nil {
				return err
			}
		}
		sent += uint64(n)
		c.Sent.Add(uint64(n))
		c.Targets.Add(uint64(targets))
		if refused > 0 {
			c.Refused.Add(uint64(refused))
		}
		if noRoute > 0 {
			c.NoRoute.Add(uint64(noRoute))
		}
		s.setPos(t, run.Position())
		if targets < want {
			if s.budget.Load() >= 0 {
				s.budget.Add(int64(want - targets)) // unused share goes back to the others
			}
			return nil // run exhausted
		}
	}
}

func (s *Sender) setPos(t int, p permute.Position) {
	s.mu.Lock()
	s.pos[t] = p
	s.mu.Unlock()
}
