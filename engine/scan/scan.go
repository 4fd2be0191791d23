package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/reachscan/reach/bpf"
	"github.com/reachscan/reach/engine/netif"
	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/engine/send"
	"github.com/reachscan/reach/engine/target"
)

// Config is a validated scan configuration. The CLI builds it; nothing here
// reads flags.
type Config struct {
	Plan      *Plan
	Blocklist *target.Set // checked once more for every frame

	// RatePPS is the send rate in packets per second across all threads;
	// 0 means unlimited. BandwidthBPS (bit/s), when set, overrides it through
	// the on-wire frame size.
	RatePPS      float64
	BandwidthBPS float64
	Probes       int // copies per target, counted inside the rate
	SourcePorts  packet.PortWindow
	Net          netif.Config
	TCPOptions   packet.Options
	TTL          uint8
	Method       send.Method
	MaxTargets   uint64
	MaxRuntime   time.Duration // stop sending after this long (0: no limit)
	Resume       []permute.Position

	// DryRun prints every probe to DryRunOut instead of sending it.
	DryRun    bool
	DryRunOut io.Writer

	// Receiver is "auto" (XDP, else AF_PACKET with a warning), "xdp" or
	// "afpacket".
	Receiver string
	// NoReset keeps valid SYN-ACKs dropped in XDP without answering RST.
	NoReset bool
	// ResetPath is how the XDP receiver answers SYN-ACKs: the zero value
	// (bpf.ResetAuto) is XDP_TX where it delivers, the kernel elsewhere.
	ResetPath bpf.ResetPath
	// Cooldown is how long replies are still read after the last probe.
	Cooldown time.Duration
	// OnHit receives every new hit, from the receiver's goroutine.
	OnHit func(*recv.Hit)

	// StopSending, when closed, stops the senders (the first SIGINT); the
	// cooldown still runs unless ctx ends too (the second).
	StopSending <-chan struct{}
	// Checkpoint, when set, is written every CheckpointEvery and at the end.
	Checkpoint      string
	CheckpointEvery time.Duration
	// Commit, when set, makes the outputs durable before each checkpoint is
	// written. It returns the time before which every reply handed to OnHit
	// is in what it committed, and a record of the committed files for the
	// checkpoint. A checkpoint then records the senders' positions as they
	// were ReplyWindow before that time, so every probe it counts as sent
	// has had its reply committed (or its window pass); after a crash the
	// resumed run repeats the probes of that lag, and its own pipeline drops
	// the pairs already committed. An error stops the scan.
	Commit func() (safe time.Time, outputs json.RawMessage, err error)
	// ReplyWindow is how long a reply may take to reach OnHit (the cooldown).
	ReplyWindow time.Duration

	// Progress, with StatusEvery set, draws a progress bar on ProgressOut
	// (a terminal) instead of logging the status line.
	Progress    bool
	ProgressOut io.Writer

	// StatusEvery is the status-line period (0: none).
	StatusEvery time.Duration
	Log         *slog.Logger
}

// Result is what a finished (or stopped) scan reports.
type Result struct {
	send.Totals
	Duration     time.Duration      // whole scan, cooldown included
	SendDuration time.Duration      // first probe to last
	Positions    []permute.Position // checkpoint per sender thread
	Finished     bool               // every probe of the shard was sent
	// Checkpointed are the positions the last checkpoint recorded (nil:
	// none written); CooledDown says the cooldown ran to its end.
	Checkpointed []permute.Position
	CooledDown   bool
	Stopped      string // why not: "signal", "max-runtime", or "" (finished, or an error)
	Path         *netif.Path
	RatePPS      float64 // the rate asked for, after --bandwidth
	Receiver     string  // receiver mode, "" for a dry run
	// Receiver counters: valid replies, first-seen open and closed pairs,
	// repeats, replies from untargeted pairs, bad cookies, lost events.
	Replies, Open, Closed, Duplicates, Foreign, BadCookie, Dropped uint64
	XDP                                                            *bpf.Counters // the XDP matcher's in-kernel counters
	XDPTXErrors                                                    uint64        // RSTs the interface failed to transmit
	// XDPTXCounted says the driver counts XDP_TX failures (XDPTXErrors
	// is a count) and XDP_TX delivers there; false when RSTs went through
	// XDP_TX and how many left is unknown.
	XDPTXCounted bool
	// Resets is how valid SYN-ACKs were answered: "xdp_tx", "kernel" (the
	// host's kernel sent the RSTs), "none", or "" (no XDP receiver).
	Resets string
}

// Run sends the scan's probes. Cancelling ctx stops the senders after their
// current batch; the Result's positions then resume the scan exactly.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Plan == nil || cfg.Blocklist == nil || cfg.Log == nil {
		return nil, errors.New("scan: incomplete config")
	}
	path, nextHop, err := paths(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// also in a dry run: it previews exactly the scan that would run
	if err := netif.CheckPortRange(cfg.SourcePorts.First, cfg.SourcePorts.Last(), path.SourceIPs); err != nil {
		return nil, err
	}
	cookie, err := packet.NewCookie(cfg.Plan.Seed, cfg.SourcePorts, cfg.Probes)
	if err != nil {
		return nil, err
	}
	tmplCfg := packet.TemplateConfig{SrcMAC: path.SrcMAC, DstMAC: path.NextHop, TTL: cfg.TTL, Options: cfg.TCPOptions}
	tmpl, err := packet.NewTemplate(tmplCfg)
	if err != nil {
		return nil, err
	}
	rate := cfg.RatePPS
	if cfg.BandwidthBPS > 0 {
		rate = send.BandwidthToRate(cfg.BandwidthBPS, packet.FrameLen(tmpl.Len()))
	}
	sources := make([]uint32, len(path.SourceIPs))
	for i, a := range path.SourceIPs {
		sources[i] = target.U32(a)
	}
	var dryMu sync.Mutex
	open := func(_ int, frameLen int, drops *atomic.Uint64) (send.Transport, error) {
		if cfg.DryRun {
			return send.NewDryRun(cfg.DryRunOut, &dryMu, frameLen), nil
		}
		return send.Open(cfg.Method, path.Iface, frameLen, drops)
	}
	s, err := send.New(send.Config{
		Space: cfg.Plan.Space, Cycle: cfg.Plan.Cycle, Layout: cfg.Plan.Layout, Resume: cfg.Resume,
		Cookie: cookie, Template: tmplCfg, Sources: sources, Blocklist: cfg.Blocklist,
		RatePPS: rate, MaxTargets: cfg.MaxTargets, Open: open, NextHop: nextHop,
	})
	if err != nil {
		return nil, err
	}
	var rx recv.Receiver
	if !cfg.DryRun {
		if rx, err = openReceiver(cfg, path, sources, cookie); err != nil {
			return nil, err
		}
		defer func() {
			if rx != nil {
				rx.Close()
			}
		}()
	}
	cfg.Log.Info("scan starting", "interface", path.Iface.Name, "source", path.SourceIPs[0], "next_hop_mac", path.NextHop.String(),
		"addresses", cfg.Plan.Space.Set().Len(), "ports", len(cfg.Plan.Space.Ports()), "rate_pps", rate, "threads", cfg.Plan.Layout.Threads,
		"method", cfg.Method, "frame_bytes", tmpl.Len(), "seed", cfg.Plan.Seed, "dry_run", cfg.DryRun)
	rxCtx, stopRx := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRx()
	rxDone := make(chan error, 1)
	if rx != nil {
		onHit := cfg.OnHit
		if onHit == nil {
			onHit = func(*recv.Hit) {}
		}
		go func() { rxDone <- rx.Run(rxCtx, onHit) }()
		select {
		case <-rx.Ready():
		case err := <-rxDone:
			return nil, fmt.Errorf("receiver: %w", err)
		}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	if cfg.StatusEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status(cfg, s, rx, start, done)
		}()
	}
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	if cfg.MaxRuntime > 0 {
		var cancelT context.CancelFunc
		sendCtx, cancelT = context.WithTimeout(sendCtx, cfg.MaxRuntime)
		defer cancelT()
	}
	if cfg.StopSending != nil {
		go func() {
			select {
			case <-cfg.StopSending:
				cfg.Log.Info("stopping: sending no more probes; cooling down (signal again to skip)")
				stopSend()
			case <-sendCtx.Done():
			}
		}()
	}
	ck := &checkpointer{cfg: cfg, snaps: []snapshot{{time.Now(), s.Positions()}}}
	var ckWG sync.WaitGroup
	ckDone := make(chan struct{})
	var ckErr error
	if cfg.Checkpoint != "" && cfg.CheckpointEvery > 0 {
		ckWG.Add(1)
		go func() {
			defer ckWG.Done()
			tick := time.NewTicker(cfg.CheckpointEvery)
			defer tick.Stop()
			for {
				select {
				case <-ckDone:
					return
				case <-tick.C:
					if _, err := ck.save(s.Positions(), time.Now(), false); err != nil {
						if ck.commitFailed {
							ckErr = err
							stopSend() // an output failed: send no more
							return
						}
						cfg.Log.Warn("checkpoint not written", "err", err)
					}
				}
			}
		}()
	}
	runErr := s.Run(sendCtx)
	close(ckDone)
	ckWG.Wait()
	runErr = errors.Join(runErr, ckErr)
	sendTime := time.Since(start)
	finished := sendCtx.Err() == nil && runErr == nil
	stopped := ""
	switch {
	case finished:
	case ctx.Err() != nil || isClosed(cfg.StopSending):
		stopped = "signal"
	case cfg.MaxRuntime > 0 && errors.Is(sendCtx.Err(), context.DeadlineExceeded):
		stopped = "max-runtime"
		cfg.Log.Info("maximum runtime reached; sending stopped", "max_runtime", cfg.MaxRuntime)
	}
	final := s.Positions()
	var rxErr error
	var checkpointed []permute.Position
	cooled := ctx.Err() == nil // no second signal: the cooldown runs to its end
	if rx != nil {
		if ctx.Err() == nil && cfg.Cooldown > 0 {
			cfg.Log.Info("sending done; cooling down", "cooldown", cfg.Cooldown)
			select {
			case <-time.After(cfg.Cooldown):
			case <-ctx.Done():
				cooled = false
			case rxErr = <-rxDone:
			}
		}
		stopRx()
		if rxErr == nil {
			rxErr = <-rxDone
		}
	}
	if cfg.Checkpoint != "" && ckErr == nil {
		// after the cooldown every reply has come: the final positions hold
		// unless hits are still being grabbed
		at := time.Now()
		if cooled {
			at = at.Add(-cfg.ReplyWindow)
		}
		pos, err := ck.save(final, at, finished)
		if err != nil {
			runErr = errors.Join(runErr, err)
		}
		checkpointed = pos
	}
	close(done)
	wg.Wait()
	res := &Result{Totals: s.Totals(), Duration: time.Since(start), SendDuration: sendTime, Positions: s.Positions(), Path: path, RatePPS: rate, Finished: finished, Stopped: stopped,
		Checkpointed: checkpointed, CooledDown: cooled}
	if rx != nil {
		var xc *bpf.Counters
		if x, ok := rx.(*recv.XDP); ok {
			if c, err := x.Counters(); err == nil {
				xc = &c
			}
			if xc != nil && xc.ResetFailed > 0 {
				cfg.Log.Warn("valid SYN-ACKs reported but not answered with an RST (the frame could not be rewritten)", "count", xc.ResetFailed)
			}
			resets := x.Resets()
			res.Resets = resets.Path
			n, counted := x.TXErrors()
			res.XDPTXErrors, res.XDPTXCounted = n, counted && resets.Delivers
			switch {
			case resets.Path != "xdp_tx":
				res.XDPTXErrors, res.XDPTXCounted = 0, true // XDP_TX sent nothing
			case n > 0:
				cfg.Log.Warn("XDP_TX failed for RSTs answering SYN-ACKs: those targets keep half-open state until they time out", "failed", n)
			}
			if resets.Path == "xdp_tx" && !res.XDPTXCounted && xc != nil && xc.TX > 0 {
				why := resets.Why
				if !counted {
					why = "the driver reports no XDP_TX failure counter"
				}
				cfg.Log.Warn("RSTs sent with XDP_TX are not confirmed: how many left is unknown, and those targets may keep half-open state", "sent", xc.TX, "why", why)
			}
		}
		closeErr := rx.Close()
		rxErr = errors.Join(rxErr, closeErr)
		st := rx.Stats()
		res.Receiver = rx.Mode()
		rx = nil
		res.Replies, res.Open, res.Closed, res.Duplicates = st.Replies.Load(), st.Open.Load(), st.Closed.Load(), st.Duplicates.Load()
		res.Foreign, res.BadCookie, res.Dropped = st.Foreign.Load(), st.BadCookie.Load(), st.Dropped.Load()
		if xc != nil {
			res.XDP = xc
			res.BadCookie += xc.BadCookie
			res.Dropped = xc.RingbufFull
		}
	}
	return res, errors.Join(runErr, rxErr)
}

func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// openReceiver attaches the XDP matcher, or the AF_PACKET fallback when
// asked or when XDP cannot load ("auto" says why, once).
func openReceiver(cfg Config, path *netif.Path, sources []uint32, cookie *packet.Cookie) (recv.Receiver, error) {
	first, last := sources[0], sources[0]
	for _, s := range sources {
		first, last = min(first, s), max(last, s)
	}
	if cfg.Receiver == "" {
		cfg.Receiver = "auto"
	}
	// one interface, one scan: another scan's matcher would eat the replies
	other, err := recv.CheckInterface(path.Iface)
	if err != nil {
		return nil, err
	}
	if other != nil && cfg.Receiver != "xdp" {
		cfg.Log.Warn("another XDP program is attached to the scan interface: replies it drops or redirects never reach reach's receiver", "interface", path.Iface.Name, "program", other.String())
	}
	if cfg.Receiver == "auto" || cfg.Receiver == "xdp" {
		k0, k1 := cookie.Key()
		x, err := recv.NewXDP(path.Iface, bpf.Config{Key0: k0, Key1: k1, SrcFirst: first, SrcLast: last,
			WindowFirst: cfg.SourcePorts.First, WindowCount: cfg.SourcePorts.Count, Probes: uint32(cfg.Probes),
			SendReset: !cfg.NoReset, ResetPath: cfg.ResetPath}, cookie, cfg.Plan.Space)
		if err == nil {
			if r := x.Resets(); r.Path == "kernel" && cfg.ResetPath == bpf.ResetAuto {
				cfg.Log.Warn("XDP_TX cannot deliver RSTs on this interface: the kernel answers SYN-ACKs with RSTs instead", "why", r.Why)
			} else if !r.Delivers {
				cfg.Log.Warn("XDP_TX may not deliver RSTs on this interface", "why", r.Why)
			}
			return x, nil
		}
		if cfg.Receiver == "xdp" || errors.Is(err, recv.ErrInterfaceBusy) {
			return nil, fmt.Errorf("xdp receiver: %w", err)
		}
		cfg.Log.Warn("XDP matcher unavailable; falling back to the AF_PACKET receiver (the kernel will answer SYN-ACKs with RSTs)", "why", err)
	} else if cfg.Receiver != "afpacket" {
		return nil, fmt.Errorf("receiver %q: want auto, xdp or afpacket", cfg.Receiver)
	}
	return recv.NewAFPacket(path.Iface, recv.FilterConfig{SrcFirst: first, SrcLast: last, Window: cfg.SourcePorts}, cookie, cfg.Plan.Space)
}

// paths finds how probes leave: the path of routed targets, and, when some
// targets sit on the interface's own subnet, a next-hop function giving each
// of those its own MAC.
func paths(ctx context.Context, cfg Config) (*netif.Path, func(uint32) ([6]byte, bool), error) {
	set := cfg.Plan.Space.Set()
	path, err := lookupPath(ctx, cfg, target.Addr(set.At(0)))
	if err != nil {
		return nil, nil, err
	}
	if path.NextHop == nil {
		path.NextHop = net.HardwareAddr{0, 0, 0, 0, 0, 0} // set per probe below
	}
	if cfg.DryRun || !path.OnLink.IsValid() {
		return path, nil, nil
	}
	onFirst := target.U32(path.OnLink.Addr())
	onLast := onFirst | uint32(uint64(1)<<(32-path.OnLink.Bits())-1)
	var local []netip.Addr
	var routed netip.Addr
	for _, r := range set.Ranges() {
		if !routed.IsValid() {
			if r.First < onFirst {
				routed = target.Addr(r.First)
			} else if r.Last > onLast {
				routed = target.Addr(max(r.First, onLast+1))
			}
		}
		lo, hi := max(r.First, onFirst), min(r.Last, onLast)
		for a := uint64(lo); lo <= hi && a <= uint64(hi) && len(local) <= netif.MaxOnLinkTargets; a++ {
			local = append(local, target.Addr(uint32(a)))
		}
	}
	if len(local) == 0 {
		return path, nil, nil
	}
	macs, missing, err := netif.OnLinkMACs(ctx, path, local, time.Second)
	if err != nil {
		return nil, nil, err
	}
	if len(missing) > 0 {
		cfg.Log.Warn("on-link targets did not answer ARP; they are skipped", "count", len(missing), "first", missing[0])
	}
	var gw [6]byte
	if routed.IsValid() {
		rp, err := lookupPath(ctx, cfg, routed)
		if err != nil {
			return nil, nil, err
		}
		copy(gw[:], rp.NextHop)
		path = rp
	}
	table := make(map[uint32][6]byte, len(macs))
	for a, m := range macs {
		var b [6]byte
		copy(b[:], m)
		table[target.U32(a)] = b
	}
	return path, func(dst uint32) ([6]byte, bool) {
		if dst < onFirst || dst > onLast {
			return gw, true
		}
		m, ok := table[dst]
		return m, ok
	}, nil
}

func lookupPath(ctx context.Context, cfg Config, dst netip.Addr) (*netif.Path, error) {
	ncfg := cfg.Net
	ncfg.NoARP = cfg.DryRun // a dry run sends nothing, not even ARP
	path, err := netif.Lookup(ctx, dst, ncfg)
	if err == nil || !cfg.DryRun || cfg.Net.Iface != "" {
		return path, err // an interface named with -i must exist, dry run or not
	}
	// A dry run needs no network: fall back to placeholders.
	cfg.Log.Warn("dry run without a usable route; using placeholder addresses", "err", err)
	src := cfg.Net.SourceIPs
	if len(src) == 0 {
		src = []netip.Addr{netip.IPv4Unspecified()}
	}
	mac := cfg.Net.GatewayMAC
	if mac == nil {
		mac = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	}
	return &netif.Path{Iface: &net.Interface{Name: "none"}, SourceIPs: src, SrcMAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, NextHop: mac}, nil
}

// status logs a ZMap-like line every cfg.StatusEvery until done closes:
// elapsed, % done, ETA, sent and send rate, replies and their rate, hits
// (open pairs) and hit rate per target, drops, receiver mode.
func status(cfg Config, s *send.Sender, rx recv.Receiver, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(cfg.StatusEvery)
	defer tick.Stop()
	total := cfg.Plan.Space.Len() / uint64(cfg.Plan.Layout.Shards)
	if cfg.MaxTargets > 0 {
		total = min(total, cfg.MaxTargets)
	}
	var lastSent, lastReplies uint64
	last := start
	mode := "none"
	if rx != nil {
		mode = rx.Mode()
	}
	var bar *mpb.Bar
	var current atomic.Value
	current.Store("")
	if cfg.Progress && cfg.ProgressOut != nil {
		p := mpb.New(mpb.WithOutput(cfg.ProgressOut), mpb.WithWidth(40))
		bar = p.AddBar(int64(total),
			mpb.PrependDecorators(decor.Elapsed(decor.ET_STYLE_GO), decor.Percentage(decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.AverageETA(decor.ET_STYLE_GO), decor.Any(func(decor.Statistics) string { return "  " + current.Load().(string) })))
		defer func() {
			bar.SetCurrent(int64(s.Totals().Targets))
			bar.Abort(false)
			p.Wait()
		}()
	}
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			tot := s.Totals()
			var replies, hits, dropped uint64
			if rx != nil {
				st := rx.Stats()
				replies, hits, dropped = st.Replies.Load(), st.Open.Load(), st.Dropped.Load()
			}
			dt := now.Sub(last).Seconds()
			sendRate, replyRate := float64(tot.Sent-lastSent)/dt, float64(replies-lastReplies)/dt
			lastSent, lastReplies, last = tot.Sent, replies, now
			elapsed := now.Sub(start)
			frac := float64(tot.Targets) / float64(max(total, 1))
			eta := "--"
			if frac > 0 && frac < 1 {
				eta = time.Duration(float64(elapsed) * (1 - frac) / frac).Round(time.Second).String()
			}
			hitRate := 0.0
			if tot.Targets > 0 {
				hitRate = 100 * float64(hits) / float64(tot.Targets)
			}
			line := fmt.Sprintf("sent: %d %.0f pps; replies: %d %.0f/s; hits: %d (%.2f%%); drops: send %d recv %d; receiver %s",
				tot.Sent, sendRate, replies, replyRate, hits, hitRate, tot.Drops, dropped, mode)
			if bar != nil {
				current.Store(line)
				bar.SetCurrent(int64(tot.Targets))
				continue
			}
			cfg.Log.Info(fmt.Sprintf("%s %5.1f%% (%s left); %s", elapsed.Round(time.Second), 100*frac, eta, line))
		}
	}
}
