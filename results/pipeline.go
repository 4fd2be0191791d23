package results

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/exposure"
	"github.com/reachscan/reach/fingerprint"
)

// Config is a validated pipeline configuration.
type Config struct {
	Sinks []Sink
	// Closed keeps closed pairs (RST) as rows; otherwise only open ones.
	Closed bool
	Shard  uint16
	// Prior are the pairs already committed by the runs this one resumes:
	// their hits are dropped as repeats (see LoadPrior).
	Prior *Prior
	// Grabs, when set, grabs every open pair before its row is written.
	Grabs *fingerprint.Batch
	// FlushEvery is how often streams and text lines are flushed while
	// rows come (0: 200 ms).
	FlushEvery time.Duration
	Log        *slog.Logger
}

// Counts are what went through a pipeline.
type Counts struct {
	Rows     uint64 // rows written to every sink
	Repeats  uint64 // hits dropped because an earlier run committed them
	Lost     uint64 // rows not written because a sink had failed
	Grabs    map[fingerprint.Status]uint64
	NotTried uint64 // open pairs the grab pool never tried (stopped)
	Local    uint64 // grabs that failed on this host (local-error)
	// Proxies are the addresses whose open rows look like a SYN proxy or
	// tarpit's (exposure.ProxyMinPorts), with their open ports.
	Proxies map[uint32]exposure.Proxy
}

// Pipeline takes hits (Hit) or rows to grab (Grab) from any goroutine and
// writes rows to its sinks. The first failing write stops it: Failed closes,
// later rows are counted as lost, and Finish aborts the outputs (final names
// stay as they were).
type Pipeline struct {
	cfg    Config
	failed chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup

	mu      sync.Mutex
	err     error
	pending pendingQueue
	counts  Counts
	proxies exposure.ProxyDetector
	closed  bool

	repeats atomic.Uint64
}

// New starts a pipeline.
func New(cfg Config) *Pipeline {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 200 * time.Millisecond
	}
	p := &Pipeline{cfg: cfg, failed: make(chan struct{}), stop: make(chan struct{})}
	p.counts.Grabs = map[fingerprint.Status]uint64{}
	p.done.Add(1)
	go p.flusher()
	return p
}

// flusher hands buffered rows to streams and terminals while rows come, so
// `reach scan -o - | jq` shows rows during the scan.
func (p *Pipeline) flusher() {
	defer p.done.Done()
	tick := time.NewTicker(p.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.mu.Lock()
			if p.err == nil && !p.closed {
				for _, s := range p.cfg.Sinks {
					if err := s.Flush(); err != nil {
						p.fail(err)
						break
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// Failed is closed when a sink has failed: the scan must stop sending.
func (p *Pipeline) Failed() <-chan struct{} { return p.failed }

// Err is the first sink failure, or nil.
func (p *Pipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// fail records the first failure. p.mu is held.
func (p *Pipeline) fail(err error) {
	if p.err != nil {
		return
	}
	p.err = err
	close(p.failed)
	if p.cfg.Log != nil {
		p.cfg.Log.Error("output failed: stopping the scan", "err", err)
	}
}

// Hit takes a receiver's hit (from its goroutine; the hit is not kept).
func (p *Pipeline) Hit(h *recv.Hit) {
	if h.Status != recv.Open && !p.cfg.Closed {
		return
	}
	if p.cfg.Prior.Has(h.Addr, h.Port) {
		p.repeats.Add(1)
		return
	}
	r := FromHit(h, p.cfg.Shard)
	if p.cfg.Grabs != nil && h.Status == recv.Open {
		p.Grab(&r)
		return
	}
	p.write(&r)
}

// Grab grabs r's target and then writes r with the grab's columns. A row
// without a status (from a list) gets one from the grab (ListStatus).
// r is kept until the grab is done.
func (p *Pipeline) Grab(r *export.Row) {
	p.mu.Lock()
	e := p.pending.add(time.Now())
	p.mu.Unlock()
	fromList := r.Status == export.StatusUnknown
	p.cfg.Grabs.Submit(fingerprint.Target{AddrPort: AddrPort(r)}, func(res fingerprint.Result) {
		ApplyGrab(r, res)
		if fromList {
			r.Status = ListStatus(res)
		}
		p.mu.Lock()
		switch {
		case res.Status == "":
			p.counts.NotTried++
		case res.Status == fingerprint.StatusLocalError:
			p.counts.Local++
		}
		if res.Status != "" {
			p.counts.Grabs[res.Status]++
		}
		p.writeLocked(r)
		p.pending.finish(e)
		p.mu.Unlock()
	})
}

func (p *Pipeline) write(r *export.Row) {
	p.mu.Lock()
	p.writeLocked(r)
	p.mu.Unlock()
}

func (p *Pipeline) writeLocked(r *export.Row) {
	if p.err != nil || p.closed {
		p.counts.Lost++
		return
	}
	for _, s := range p.cfg.Sinks {
		if err := s.Write(r); err != nil {
			p.fail(err)
			p.counts.Lost++
			return
		}
	}
	p.counts.Rows++
	if r.Status == export.StatusOpen {
		p.proxies.Add(r.Addr, exposure.Signature{TTL: r.TTL, Window: r.Window, MSS: r.MSS})
	}
}

// Commit makes every row written so far durable, and returns the time
// before which every hit handed to the pipeline is in those rows (hits
// still being grabbed hold it back) and the parts that hold them, for the
// checkpoint. It has the shape of scan.Config.Commit.
func (p *Pipeline) Commit() (time.Time, json.RawMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	safe := time.Now()
	if t, ok := p.pending.oldest(); ok {
		safe = t
	}
	if p.err != nil {
		return safe, nil, p.err
	}
	for _, s := range p.cfg.Sinks {
		if err := s.Commit(); err != nil {
			p.fail(err)
			return safe, nil, err
		}
	}
	b, err := json.Marshal(p.partsLocked())
	return safe, b, err
}

// Parts are the committed files that hold the scan's rows: the earlier
// runs' parts no sink folds in, then every sink's.
func (p *Pipeline) Parts() json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(p.partsLocked())
	return b
}

func (p *Pipeline) partsLocked() []Part {
	var own []Part
	for _, s := range p.cfg.Sinks {
		own = append(own, s.Parts()...)
	}
	out := []Part{}
	if p.cfg.Prior != nil {
		for _, pp := range p.cfg.Prior.Parts {
			if !folded(pp, own) {
				out = append(out, pp)
			}
		}
	}
	return append(out, own...)
}

// Progress is how many rows have been written (or lost to a failure) so
// far, and how many hits are still being grabbed.
func (p *Pipeline) Progress() (done, pending uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts.Rows + p.counts.Lost, uint64(p.pending.len())
}

// StopGrabs stops new grabs (the first signal): grabs running finish
// within their deadline, targets still waiting are written untried.
func (p *Pipeline) StopGrabs() {
	if p.cfg.Grabs != nil {
		p.cfg.Grabs.Stop()
	}
}

// Finish waits for the grabs, completes every output and returns the counts.
// After a failure it aborts the outputs and returns the failure.
func (p *Pipeline) Finish() (Counts, error) {
	p.end(false)
	defer p.mu.Unlock()
	if p.err == nil {
		for _, s := range p.cfg.Sinks {
			if err := s.Close(); err != nil {
				p.fail(err)
				break
			}
		}
	}
	if p.err != nil {
		for _, s := range p.cfg.Sinks {
			s.Abort()
		}
	}
	c := p.counts
	c.Repeats = p.repeats.Load()
	c.Proxies = p.proxies.Proxies()
	if p.err != nil {
		return c, fmt.Errorf("%w (%d rows not written)", p.err, c.Lost)
	}
	return c, nil
}

// Abort drops every output (a scan that failed before its first probe):
// final names stay as they were.
func (p *Pipeline) Abort() {
	p.end(true)
	defer p.mu.Unlock()
	for _, s := range p.cfg.Sinks {
		s.Abort()
	}
}

// end waits for the grabs (stopping new ones first when stop is set) and
// the flusher, and returns with p.mu held and the pipeline closed.
func (p *Pipeline) end(stop bool) {
	if p.cfg.Grabs != nil {
		if stop {
			p.cfg.Grabs.Stop()
		}
		p.cfg.Grabs.Wait()
	}
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	p.closed = true
}

// pendingQueue tracks when each hit still being grabbed arrived, in arrival
// order, so the oldest is found in O(1) amortised.
type pendingQueue struct {
	at       []time.Time
	done     []bool
	head     int
	base     int // index of at[0] since the start
	finished int // entries finished since the start
}

func (q *pendingQueue) add(t time.Time) int {
	q.at = append(q.at, t)
	q.done = append(q.done, false)
	return q.base + len(q.at) - 1
}

func (q *pendingQueue) finish(i int) {
	q.done[i-q.base] = true
	q.finished++
}

// len is how many entries are not finished.
func (q *pendingQueue) len() int { return q.base + len(q.at) - q.finished }

func (q *pendingQueue) oldest() (time.Time, bool) {
	for q.head < len(q.at) && q.done[q.head] {
		q.head++
	}
	if q.head > 1024 && 2*q.head > len(q.at) {
		q.at, q.done = append(q.at[:0], q.at[q.head:]...), append(q.done[:0], q.done[q.head:]...)
		q.base += q.head
		q.head = 0
	}
	if q.head == len(q.at) {
		return time.Time{}, false
	}
	return q.at[q.head], true
}
