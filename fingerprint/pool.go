package fingerprint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Pool grabs from open ports with a bounded set of workers. Its zero value
// is not usable: build it with NewPool.
type Pool struct {
	cfg PoolConfig
}

// PoolConfig configures a Pool. Zero fields take the defaults in brackets.
type PoolConfig struct {
	// Grabbers is the registry, in the order generic probes try them.
	Grabbers []Grabber
	// Fallback keeps whatever a server says that no grabber recognised
	// (the generic banner grabber); nil keeps nothing.
	Fallback Grabber
	// Dial opens a connection (a net.Dialer's DialContext): kernel TCP, so
	// source ports come from ip_local_port_range, outside the scan's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Workers is the number of targets grabbed at once [100].
	Workers int
	// Timeout is one overall deadline per target, covering every dial,
	// read, TLS handshake and follow-up probe [10 s].
	Timeout time.Duration
	// MaxBanner is the most bytes kept or read at once per target [64 KiB].
	MaxBanner int
	// Rate caps new connections per second across the pool; 0 = no cap.
	Rate float64
	// PerAddr caps concurrent grabs to one address [4].
	PerAddr int
	// Greeting is how long to wait for a server to speak first [2 s, at
	// most a third of Timeout].
	Greeting time.Duration
}

// TLSPorts are ports where TLS is spoken from the first byte (HTTPS,
// SMTPS, IMAPS, POP3S, LDAPS, FTPS, …), so TLS is tried before anything
// else there (IANA service name registry).
var tlsPorts = []uint16{443, 465, 636, 853, 989, 990, 993, 995, 2376, 4443, 5986, 6443, 8443, 9443, 10443}

// NewPool validates cfg and fills its defaults.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if len(cfg.Grabbers) == 0 {
		return nil, errors.New("grab pool: no grabbers")
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 100
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBanner <= 0 {
		cfg.MaxBanner = 64 << 10
	}
	if cfg.PerAddr <= 0 {
		cfg.PerAddr = 4
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("grab pool: rate %g: want connections per second ≥ 0", cfg.Rate)
	}
	if cfg.Greeting <= 0 {
		cfg.Greeting = 2 * time.Second
	}
	cfg.Greeting = min(cfg.Greeting, cfg.Timeout/3)
	return &Pool{cfg: cfg}, nil
}

// Batch is one use of a pool: targets go in with Submit, results come out
// through each target's callback, and Wait returns when all are done.
type Batch struct {
	p       *Pool
	ctx     context.Context
	limiter *rate.Limiter

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []job
	closed bool
	active map[netip.Addr]int // grabs running per address

	wg sync.WaitGroup
}

type job struct {
	t    Target
	done func(Result)
}

// Start starts the pool's workers; they stop when ctx ends or after Wait.
func (p *Pool) Start(ctx context.Context) *Batch {
	b := &Batch{p: p, ctx: ctx, active: map[netip.Addr]int{}}
	b.cond = sync.NewCond(&b.mu)
	if p.cfg.Rate > 0 {
		b.limiter = rate.NewLimiter(rate.Limit(p.cfg.Rate), max(1, int(p.cfg.Rate/10)))
	}
	// wake the workers when ctx ends, so they return
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.closed = true
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	b.wg.Add(p.cfg.Workers)
	for range p.cfg.Workers {
		go b.work()
	}
	go func() { b.wg.Wait(); stop() }()
	return b
}

// Submit queues t; done receives its result from a worker goroutine. It
// never blocks (the queue grows), so a receiver can call it per hit.
func (b *Batch) Submit(t Target, done func(Result)) {
	if t.MaxBanner == 0 {
		t.MaxBanner = b.p.cfg.MaxBanner
	}
	b.mu.Lock()
	b.queue = append(b.queue, job{t, done})
	b.cond.Signal()
	b.mu.Unlock()
}

// Wait closes the batch to new targets, lets the workers finish the queue
// and returns once every callback has returned. Targets still queued when
// ctx ends get a timeout result.
func (b *Batch) Wait() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	b.wg.Wait()
}

// next takes the first queued job whose address is under its cap.
func (b *Batch) next() (job, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.ctx.Err() != nil && len(b.queue) > 0 {
			j := b.queue[0]
			b.queue = b.queue[1:]
			b.active[j.t.AddrPort.Addr()]++
			return j, true
		}
		for i, j := range b.queue {
			a := j.t.AddrPort.Addr()
			if b.active[a] < b.p.cfg.PerAddr {
				b.queue = slices.Delete(b.queue, i, i+1)
				b.active[a]++
				return j, true
			}
		}
		if b.closed && len(b.queue) == 0 {
			return job{}, false
		}
		b.cond.Wait()
	}
}

func (b *Batch) work() {
	defer b.wg.Done()
	for {
		j, ok := b.next()
		if !ok {
			return
		}
		res := b.p.grab(b.ctx, j.t, b.limiter)
		b.mu.Lock()
		a := j.t.AddrPort.Addr()
		if b.active[a]--; b.active[a] == 0 {
			delete(b.active, a)
		}
		b.cond.Broadcast()
		b.mu.Unlock()
		if j.done != nil {
			j.done(res)
		}
	}
}

// Grab identifies the service at t on its own, outside any batch.
func (p *Pool) Grab(ctx context.Context, t Target) Result {
	if t.MaxBanner == 0 {
		t.MaxBanner = p.cfg.MaxBanner
	}
	return p.grab(ctx, t, nil)
}
