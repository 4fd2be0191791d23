package fingerprint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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

	mu      sync.Mutex
	cond    *sync.Cond
	addrs   map[netip.Addr]*addrQueue // targets waiting and grabs running, per address
	ready   []*addrQueue              // addresses with a target waiting and room under the cap, FIFO
	head    int                       // first live entry of ready
	queued  int                       // targets waiting in all queues
	closed  bool
	stopped bool // Stop: waiting targets are not tried

	wg sync.WaitGroup
}

// addrQueue is one address's waiting targets (FIFO) and running grabs.
type addrQueue struct {
	addr   netip.Addr
	jobs   []job
	first  int // first waiting job of jobs
	active int
	ready  bool // in Batch.ready
}

func (q *addrQueue) waiting() int { return len(q.jobs) - q.first }

type job struct {
	t    Target
	done func(Result)
}

// Start starts the pool's workers; they stop when ctx ends or after Wait.
func (p *Pool) Start(ctx context.Context) *Batch {
	b := &Batch{p: p, ctx: ctx, addrs: map[netip.Addr]*addrQueue{}}
	b.cond = sync.NewCond(&b.mu)
	if p.cfg.Rate > 0 {
		b.limiter = rate.NewLimiter(rate.Limit(p.cfg.Rate), max(1, int(p.cfg.Rate/10)))
	}
	// when ctx ends the cap no longer holds (the grabs end at once): make
	// every waiting address ready and wake the workers
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.closed = true
		for _, q := range b.addrs {
			b.makeReady(q)
		}
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

// makeReady queues q's address for a worker when it has a target waiting
// and room under the per-address cap (or ctx has ended). b.mu is held.
func (b *Batch) makeReady(q *addrQueue) {
	if q.ready || q.waiting() == 0 || (q.active >= b.p.cfg.PerAddr && b.ctx.Err() == nil) {
		return
	}
	q.ready = true
	b.ready = append(b.ready, q)
}

// Submit queues t; done receives its result from a worker goroutine. It
// never blocks (the queue grows), so a receiver can call it per hit.
func (b *Batch) Submit(t Target, done func(Result)) {
	if t.MaxBanner == 0 {
		t.MaxBanner = b.p.cfg.MaxBanner
	}
	a := t.AddrPort.Addr()
	b.mu.Lock()
	q := b.addrs[a]
	if q == nil {
		q = &addrQueue{addr: a}
		b.addrs[a] = q
	}
	q.jobs = append(q.jobs, job{t, done})
	b.queued++
	b.makeReady(q)
	b.cond.Signal()
	b.mu.Unlock()
}

// Stop starts no more grabs: the grabs running finish within their
// deadline, and every target still waiting gets a Result with no Status,
// which means never tried.
func (b *Batch) Stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
}

func (b *Batch) isStopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

// Wait closes the batch to new targets, lets the workers finish the queue
// and returns once every callback has returned. Targets still queued when
// ctx ends or after Stop get a Result with no Status (never tried, nothing
// known); those in flight end as their grab does (a timeout, usually).
func (b *Batch) Wait() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	b.wg.Wait()
}

// next takes the first target of the first ready address, round-robin
// across addresses. It costs O(1) whatever the queue's length.
func (b *Batch) next() (job, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.head < len(b.ready) {
			q := b.ready[b.head]
			b.ready[b.head] = nil
			if b.head++; b.head == len(b.ready) {
				b.ready, b.head = b.ready[:0], 0
			} else if b.head > 1024 && 2*b.head > len(b.ready) {
				b.ready, b.head = append(b.ready[:0], b.ready[b.head:]...), 0
			}
			q.ready = false
			j := q.jobs[q.first]
			q.jobs[q.first] = job{}
			if q.first++; q.first == len(q.jobs) {
				q.jobs, q.first = q.jobs[:0], 0
			} else if q.first > 1024 && 2*q.first > len(q.jobs) {
				q.jobs, q.first = append(q.jobs[:0], q.jobs[q.first:]...), 0
			}
			b.queued--
			q.active++
			b.makeReady(q) // to the back of the line: fair across addresses
			return j, true
		}
		if b.closed && b.queued == 0 {
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
		var res Result
		if b.isStopped() || b.ctx.Err() != nil {
			// stopped before its turn: no Status, nothing is known about it
			res = Result{Target: j.t.AddrPort, Time: time.Now().UTC(), Error: "not tried: the grabs were stopped first"}
		} else {
			res = b.p.grab(b.ctx, j.t, b.limiter)
		}
		b.mu.Lock()
		q := b.addrs[j.t.AddrPort.Addr()]
		q.active--
		if q.active == 0 && q.waiting() == 0 {
			delete(b.addrs, q.addr)
		} else if !q.ready {
			b.makeReady(q)
			if q.ready {
				b.cond.Signal()
			}
		}
		if b.closed && b.queued == 0 {
			b.cond.Broadcast() // the idle workers can return
		}
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
