package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/target"
)

// Modes of the harness.
const (
	ModeSink   = "sink"   // far side drops everything: maximum send rate
	ModeRecall = "recall" // far side answers by a ground truth: hits found at each rate
	ModeIdle   = "idle"   // a low rate for a fixed time: CPU cost
)

// Config selects what the harness measures. The zero value of each field
// means its default.
type Config struct {
	Modes   []string      // default: sink, recall, idle
	Tools   []string      // default: reach and every installed peer
	Runs    int           // runs per configuration, alternating tools (default 5)
	Rates   []int         // recall rates in pps, 0 = as fast as the tool can (default 10k, 100k, 300k, 0)
	Threads []int         // sink sender threads (default 1 and the number of CPUs)
	Window  time.Duration // sink: measured window after a 1 s warm-up (default 3 s)
	// IdleRate is the idle mode's rate in pps (default 10,000) and
	// IdleTime its measured window (default 10 s).
	IdleRate int
	IdleTime time.Duration
	Reach    string    // path of the reach binary
	Env      []string  // extra environment for reach
	Log      io.Writer // progress lines; nil discards them
}

// Harness runs benchmark configurations.
type Harness struct {
	cfg Config
}

// New validates cfg, fills its defaults and returns a harness.
func New(cfg Config) (*Harness, error) {
	if err := testnet.Available(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = []string{ModeSink, ModeRecall, ModeIdle}
	}
	for _, m := range cfg.Modes {
		if m != ModeSink && m != ModeRecall && m != ModeIdle {
			return nil, fmt.Errorf("bench: unknown mode %q (want sink, recall or idle)", m)
		}
	}
	if len(cfg.Tools) == 0 {
		cfg.Tools = append([]string{Reach}, Installed()...)
	}
	cfg.Modes, cfg.Tools, cfg.Rates, cfg.Threads = unique(cfg.Modes), unique(cfg.Tools), unique(cfg.Rates), unique(cfg.Threads)
	for _, t := range cfg.Tools {
		switch t {
		case Reach, ReachCheckpoint:
		case ZMap, Masscan:
			if _, err := exec.LookPath(t); err != nil {
				return nil, fmt.Errorf("bench: %s is not installed (apt-get install %s, or --install-peers)", t, t)
			}
		default:
			return nil, fmt.Errorf("bench: unknown tool %q (want reach, reach-checkpoint, zmap or masscan)", t)
		}
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 5
	}
	if len(cfg.Rates) == 0 {
		cfg.Rates = []int{10_000, 100_000, 300_000, 0}
	}
	if len(cfg.Threads) == 0 {
		cfg.Threads = []int{1}
		if n := runtime.NumCPU(); n > 1 {
			cfg.Threads = append(cfg.Threads, n)
		}
	}
	if cfg.Window <= 0 {
		cfg.Window = 3 * time.Second
	}
	if cfg.IdleRate <= 0 {
		cfg.IdleRate = 10_000
	}
	if cfg.IdleTime <= 0 {
		cfg.IdleTime = 10 * time.Second
	}
	if cfg.Reach == "" {
		return nil, errors.New("bench: no reach binary given")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return &Harness{cfg: cfg}, nil
}

// unique drops repeated values, keeping the first of each.
func unique[T comparable](v []T) []T {
	seen := map[T]bool{}
	out := v[:0:0]
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Installed returns the peers (ZMap, masscan) found on PATH.
func Installed() []string {
	var out []string
	for _, p := range peers {
		if _, err := exec.LookPath(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Run is one measured run of one tool.
type Run struct {
	Mode      string `json:"mode"`
	Tool      string `json:"tool"`
	Threads   int    `json:"threads"`
	RateAsked int    `json:"rate_asked_pps"` // 0 = as fast as it can
	// RateAchieved is the probe rate the far side counted, in pps.
	RateAchieved float64 `json:"rate_achieved_pps"`
	Probes       uint64  `json:"probes"`      // probes the far side counted in the measured span
	CPUSeconds   float64 `json:"cpu_seconds"` // user + system CPU of the tool in the measured span
	CPUPerM      float64 `json:"cpu_seconds_per_million_probes"`
	// Recall mode: ground-truth open pairs reported, reported pairs that
	// are not open, and lines that repeat a reported pair.
	Recall         float64 `json:"recall,omitempty"`
	Found          int     `json:"found,omitempty"`
	Truth          int     `json:"truth,omitempty"`
	FalsePositives int     `json:"false_positives"`
	Duplicates     int     `json:"duplicates"`
	// ResponderTX and ResponderTXErrors are the far side's XDP_TX
	// counters: replies sent, and replies the veth could not transmit (a
	// reply lost there is the responder's, not the tool's).
	ResponderTX       uint64 `json:"responder_tx,omitempty"`
	ResponderTXErrors uint64 `json:"responder_tx_errors,omitempty"`
	// ToolFound is the number of open pairs the tool's own status said it
	// found (masscan's found=), to tell its receive losses from lost
	// output lines; 0 when the tool does not say.
	ToolFound int `json:"tool_found,omitempty"`
	// SendDrops are frames the scanner's veth end dropped on transmit
	// (its TX dropped counter): probes that never reached the far side,
	// so a miss there is the sender's burst overflowing the veth ring.
	SendDrops uint64  `json:"send_drops"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

// Run measures every configuration, cfg.Runs times, alternating the tools
// within each round (A B C A B C …), and returns the report.
func (h *Harness) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), Machine: machine(), Versions: map[string]string{}}
	for _, t := range h.cfg.Tools {
		rep.Versions[t] = version(t, h.cfg.Reach)
	}
	type job struct {
		mode    string
		tool    string
		threads int
		rate    int
	}
	var jobs []job
	for _, m := range h.cfg.Modes {
		switch m {
		case ModeSink:
			for _, th := range h.cfg.Threads {
				for _, t := range h.cfg.Tools {
					if t == Masscan && th != 1 {
						continue // masscan has one transmit thread
					}
					jobs = append(jobs, job{m, t, th, 0})
				}
			}
		case ModeRecall:
			for _, r := range h.cfg.Rates {
				for _, t := range h.cfg.Tools {
					jobs = append(jobs, job{m, t, 1, r})
				}
			}
		case ModeIdle:
			for _, t := range h.cfg.Tools {
				jobs = append(jobs, job{m, t, 1, h.cfg.IdleRate})
			}
		}
	}
	// rounds: every configuration once per round, so drift over time hits
	// every tool alike
	for round := 1; round <= h.cfg.Runs; round++ {
		for _, j := range jobs {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			r, err := h.one(ctx, j.mode, j.tool, j.threads, j.rate, round)
			if err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				r.Error = err.Error()
			}
			fmt.Fprintf(h.cfg.Log, "round %d/%d %s\n", round, h.cfg.Runs, r.line())
			rep.Runs = append(rep.Runs, r)
		}
	}
	rep.Summary = summarise(rep.Runs)
	return rep, nil
}

func (r Run) line() string {
	if r.Error != "" {
		return fmt.Sprintf("%-6s %-7s T%d rate %s: error: %s", r.Mode, r.Tool, r.Threads, rateText(r.RateAsked), r.Error)
	}
	s := fmt.Sprintf("%-6s %-7s T%d rate %-7s achieved %9.0f pps, cpu %.2f s/M", r.Mode, r.Tool, r.Threads, rateText(r.RateAsked), r.RateAchieved, r.CPUPerM)
	if r.Mode == ModeRecall {
		s += fmt.Sprintf(", recall %.4f (%d/%d), false+ %d, dups %d, send drops %d, responder tx errors %d", r.Recall, r.Found, r.Truth, r.FalsePositives, r.Duplicates, r.SendDrops, r.ResponderTXErrors)
		if r.ToolFound > 0 {
			s += fmt.Sprintf(", the tool's own count %d", r.ToolFound)
		}
	}
	return s
}

// one runs one tool once in a fresh simulated network.
func (h *Harness) one(ctx context.Context, mode, tool string, threads, rate, round int) (Run, error) {
	r := Run{Mode: mode, Tool: tool, Threads: threads, RateAsked: rate}
	opt := testnet.Options{Queues: runtime.NumCPU()}
	if mode == ModeRecall {
		opt.GRO = true
	}
	nw, err := testnet.New(ctx, opt)
	if err != nil {
		return r, err
	}
	defer nw.Close()
	dir, err := os.MkdirTemp("", "reach-bench-*")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	sec := responder.Sink
	if mode == ModeRecall {
		sec = responder.Answer
	}
	if err := nw.AttachResponderSection(ctx, responder.Object, sec); err != nil {
		return r, err
	}
	if mode == ModeRecall && tool != Reach && tool != ReachCheckpoint {
		// peers run no XDP program: XDP_TX from the far side needs one here
		if err := nw.AttachScanPassthrough(ctx, responder.Object); err != nil {
			return r, err
		}
	}
	mac, err := nw.NetMAC(ctx)
	if err != nil {
		return r, err
	}
	s := spec{mode: mode, threads: threads, rate: rate, prefix: testnet.Internet.String(), seed: round,
		iface: nw.ScanIf, gateway: mac, dir: dir, ports: "1-1000", perIP: 1000}
	switch mode {
	case ModeRecall:
		s.ports, s.perIP, s.cool = "80", 1, 2*time.Second
	case ModeIdle:
		s.perIP = 20 // ZMap: 20 probes per target at 1/20 the target rate
	}
	inv, err := h.command(tool, s)
	if err != nil {
		return r, err
	}
	cmd := nw.Command(ctx, nw.Scan, inv.name, inv.args...)
	cmd.Env = append(os.Environ(), inv.env...)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if inv.stdout != "" {
		f, err := os.Create(inv.stdout)
		if err != nil {
			return r, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	smp, err := startSampler(nw.Net, nw.NetIf)
	if err != nil {
		return r, err
	}
	defer smp.stop()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("start %s: %w", tool, err)
	}
	switch mode {
	case ModeSink, ModeIdle:
		window := h.cfg.Window
		if mode == ModeIdle {
			window = h.cfg.IdleTime
		}
		err = measureWindow(ctx, &r, cmd, smp, time.Second, window)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, lastLine(stderr.String()))
		}
	case ModeRecall:
		err = h.recall(ctx, &r, cmd, smp, inv, stderr, s.cool)
	}
	r.Seconds = time.Since(start).Seconds()
	if d, derr := txDropped(nw); derr == nil {
		r.SendDrops = d
	}
	if err != nil {
		return r, err
	}
	return r, nil
}

// txDropped reads the TX dropped counter of the scanner's veth end
// (netlink, from inside its namespace).
func txDropped(nw *testnet.Network) (uint64, error) {
	var dropped uint64
	err := testnet.InNamespace(nw.Scan, func() error {
		l, err := netlink.LinkByName(nw.ScanIf)
		if err != nil {
			return fmt.Errorf("link %s: %w", nw.ScanIf, err)
		}
		if st := l.Attrs().Statistics; st != nil {
			dropped = st.TxDropped
		}
		return nil
	})
	return dropped, err
}

// measureWindow samples the far side's drop counter and the tool's CPU time
// after warm, and again window later, then kills the tool: the rate and
// CPU per probe of its steady state, without start-up costs.
func measureWindow(ctx context.Context, r *Run, cmd *exec.Cmd, smp *sampler, warm, window time.Duration) error {
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := sleep(ctx, warm); err != nil {
		return err
	}
	c0, t0 := smp.now()
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("%s exited early", r.Tool)
	}
	if err := sleep(ctx, window); err != nil {
		return err
	}
	c1, t1 := smp.now()
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("%s exited before the window ended", r.Tool)
	}
	r.Probes = c1.drops - c0.drops
	r.RateAchieved = float64(r.Probes) / t1.Sub(t0).Seconds()
	r.CPUSeconds = cpu1 - cpu0
	if r.Probes > 0 {
		r.CPUPerM = r.CPUSeconds / (float64(r.Probes) / 1e6)
	}
	if r.Probes == 0 {
		return fmt.Errorf("the far side counted no probes")
	}
	return nil
}

// recallScope is what a recall run scans: Internet (198.19.0.0/16) × port
// 80, and probes the number of probes that is.
func recallScope() (scope testnet.Scope, probes int) {
	first := target.U32(testnet.Internet.Addr())
	last := first | (uint32(1)<<(32-testnet.Internet.Bits()) - 1)
	return testnet.Scope{Ranges: []target.Range{{First: first, Last: last}}, Ports: []uint16{80}}, int(last-first) + 1
}

// recall lets the tool finish its scan and compares what it reports with
// the responder's ground truth.
func (h *Harness) recall(ctx context.Context, r *Run, cmd *exec.Cmd, smp *sampler, inv invocation, stderr *lockedBuffer, cool time.Duration) error {
	scope, probes := recallScope()
	// probes at the asked rate, the cooldown, and a margin for start-up
	limit := 60 * time.Second
	if r.RateAsked > 0 {
		limit += time.Duration(float64(probes) / float64(r.RateAsked) * float64(time.Second))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if r.Tool == Masscan {
		go stopMasscan(cmd, stderr, cool, done)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("%s did not finish within %s", r.Tool, limit)
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
	if err != nil && !(r.Tool == Masscan && strings.Contains(stderr.String(), "100.00% done")) {
		return fmt.Errorf("%v: %s", err, lastLine(stderr.String()))
	}
	if ps := cmd.ProcessState; ps != nil {
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	span := smp.sendSpan()
	r.Probes = uint64(probes)
	if span > 0 {
		r.RateAchieved = float64(probes) / span.Seconds()
	}
	r.CPUPerM = r.CPUSeconds / (float64(probes) / 1e6)
	last := smp.last()
	r.ResponderTX, r.ResponderTXErrors = last.tx, last.txErrors
	if r.Tool == Masscan {
		if m := foundRE.FindAllStringSubmatch(stderr.String(), -1); m != nil {
			r.ToolFound, _ = strconv.Atoi(m[len(m)-1][1])
		}
	}
	open, dups, err := inv.parse(inv.output)
	if err != nil {
		return fmt.Errorf("read %s output: %w", r.Tool, err)
	}
	reports := make([]testnet.Report, 0, len(open))
	for p := range open {
		reports = append(reports, testnet.Report{Addr: p.addr, Port: p.port, Open: true})
	}
	v := testnet.Verify(testnet.Truth{}, scope, reports) // the tools report open pairs only
	r.Truth, r.Found, r.FalsePositives, r.Duplicates = v.Open, v.RightOpen, v.Wrong, dups
	r.Recall = v.Recall()
	return nil
}

var foundRE = regexp.MustCompile(`found=(\d+)`)

// stopMasscan ends masscan 1.3.2, which keeps "waiting" with a negative
// count after its --wait time instead of exiting, and ignores SIGINT then:
// once its status line says 100% done, it waits the cooldown and kills it.
// Its hits are already out: line-buffered standard output.
func stopMasscan(cmd *exec.Cmd, stderr *lockedBuffer, cool time.Duration, done chan error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if cmd.ProcessState != nil {
			return
		}
		if strings.Contains(stderr.String(), "100.00% done") {
			break
		}
	}
	time.Sleep(cool + 500*time.Millisecond)
	cmd.Process.Kill()
}

// lockedBuffer collects a child's output while other goroutines read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// procCPU returns the user + system CPU seconds of process pid, all its
// threads included (proc(5), fields 14 and 15 of /proc/PID/stat).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// the command name may hold spaces: fields count from the last ')'
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	if f[0] == "Z" {
		return 0, fmt.Errorf("process %d exited", pid)
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// counters are the far side veth's XDP statistics, summed over its queues.
type counters struct {
	packets, drops, tx, txErrors uint64
}

type sample struct {
	t time.Time
	c counters
}

// sampler polls the far side's veth statistics every 5 ms from a thread
// inside its namespace, for rates and send spans.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	quit    chan struct{}
	done    chan struct{}
}

func startSampler(ns, dev string) (*sampler, error) {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(s.done)
		err := testnet.InNamespace(ns, func() error {
			e, err := ethtool.NewEthtool()
			if err != nil {
				return err
			}
			defer e.Close()
			read := func() error {
				st, err := e.Stats(dev)
				if err != nil {
					return fmt.Errorf("ethtool stats of %s: %w", dev, err)
				}
				var c counters
				for k, v := range st {
					switch {
					case strings.HasSuffix(k, "_xdp_packets"):
						c.packets += v
					case strings.HasSuffix(k, "_xdp_drops"):
						c.drops += v
					case strings.HasSuffix(k, "_xdp_tx_errors"):
						c.txErrors += v
					case strings.HasSuffix(k, "_xdp_tx"):
						c.tx += v
					}
				}
				s.mu.Lock()
				s.samples = append(s.samples, sample{time.Now(), c})
				s.mu.Unlock()
				return nil
			}
			if err := read(); err != nil {
				return err
			}
			ready <- nil
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-s.quit:
					return read()
				case <-tick.C:
					if err := read(); err != nil {
						return err
					}
				}
			}
		})
		if err != nil {
			select {
			case ready <- err:
			default:
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sampler) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

func (s *sampler) now() (counters, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.samples[len(s.samples)-1]
	return l.c, l.t
}

func (s *sampler) last() counters {
	c, _ := s.now()
	return c
}

// sendSpan is the time from the first to the last sample in which the far
// side counted new packets: the send duration, give or take one 5 ms
// sample and the replies' tail.
func (s *sampler) sendSpan() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first, last time.Time
	for i := 1; i < len(s.samples); i++ {
		if s.samples[i].c.packets > s.samples[i-1].c.packets {
			if first.IsZero() {
				first = s.samples[i-1].t
			}
			last = s.samples[i].t
		}
	}
	return last.Sub(first)
}
