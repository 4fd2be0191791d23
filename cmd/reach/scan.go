package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/reachscan/reach/engine/netif"
	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/send"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/exposure"
	"github.com/reachscan/reach/results"
)

func scanCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "send a TCP SYN probe to every (address, port) pair of the targets",
		ArgsUsage: "TARGET... (address, CIDR, a-b range, AS number, @FILE)",
		Before:    listFields,
		Flags: append(append(append(append(targetFlags(), orderFlags()...), grabFlags()...),
			outputFlags("write results to `PATH` (.csv, .jsonl, .parquet, .arrow; DIR/ = partitioned Parquet; - = stdout, NDJSON unless -O); default: ip,port lines on stdout")...),
			&cli.BoolFlag{Name: "banners", Usage: "grab a banner from every open port while the scan runs and identify its service (see reach grab; stdout lines become ip,port,service,product,version,status)"},
			&cli.Float64Flag{Name: "rate", Aliases: []string{"r"}, Value: 10000, Usage: "send rate in packets per second across all threads (fractions allowed; 0 = as fast as possible)"},
			&cli.StringFlag{Name: "bandwidth", Aliases: []string{"B"}, Usage: "send rate as on-wire bandwidth in bit/s, with K, M or G suffix (overrides --rate)"},
			&cli.IntFlag{Name: "sender-threads", Aliases: []string{"T"}, Usage: "sender threads, each with its own socket (default: one per 250 kpps of --rate, at most one per core)"},
			&cli.IntFlag{Name: "probes", Value: 1, Usage: "SYNs per target, each from its own source port (counted inside --rate)"},
			&cli.StringFlag{Name: "source-port", Value: "61000-65535", Usage: "source-port `RANGE` for probes; must lie outside net.ipv4.ip_local_port_range"},
			&cli.StringFlag{Name: "source-ip", Aliases: []string{"S"}, Usage: "source `ADDRESS` or range a-b (default: the route's preferred source)"},
			&cli.StringFlag{Name: "gateway-mac", Aliases: []string{"G"}, Usage: "next-hop `MAC` for routed targets (default: neighbour table, then ARP)"},
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "send on this `INTERFACE` (default: the route's)"},
			&cli.StringFlag{Name: "tcp-options", Value: string(packet.OptionsLinux), Usage: "SYN option layout: linux, windows, bsd, mss or none"},
			&cli.UintFlag{Name: "ttl", Value: 64, Usage: "IPv4 time to live of probes"},
			&cli.StringFlag{Name: "send-method", Value: string(send.MethodSendmmsg), Usage: "how frames reach the kernel: sendmmsg or txring (PACKET_TX_RING)"},
			&cli.Uint64Flag{Name: "max-targets", Aliases: []string{"n"}, Usage: "stop after this many (address, port) targets of this shard (0: no limit)"},
			&cli.DurationFlag{Name: "max-runtime", Aliases: []string{"t"}, Usage: "stop sending after this long (then cool down); a checkpoint resumes the rest"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print every probe decoded instead of sending it (needs no privileges)"},
			&cli.StringFlag{Name: "receiver", Value: "auto", Usage: "reply receiver: auto (XDP, else AF_PACKET), xdp or afpacket"},
			&cli.BoolFlag{Name: "no-reset", Usage: "drop valid SYN-ACKs in XDP without answering them with an RST"},
			&cli.DurationFlag{Name: "cooldown", Aliases: []string{"c"}, Value: 8 * time.Second, Usage: "keep receiving this long after the last probe"},
			&cli.BoolFlag{Name: "output-closed", Usage: "also output pairs that answered RST (closed)"},
			&cli.StringFlag{Name: "checkpoint", Usage: "write the scan position to `FILE` periodically and at the end (resume with --resume)"},
			&cli.DurationFlag{Name: "checkpoint-interval", Value: 5 * time.Second, Usage: "how often to write --checkpoint"},
			&cli.StringFlag{Name: "resume", Usage: "continue the scan whose checkpoint is `FILE` (same targets, ports and layout; the seed comes from it)"},
			&cli.StringFlag{Name: "metadata", Aliases: []string{"m"}, Usage: "write the scan's metadata (config, seed, generator, counters, timings, versions) as JSON to `FILE`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no status line"},
		),
		Action: func(c *cli.Context) error {
			cfg, ck, err := scanConfig(c, log)
			if err != nil {
				return err
			}
			ctx, hardStop := context.WithCancel(c.Context)
			defer hardStop()
			stopSending := make(chan struct{})
			sig, unsignal := handleSignals(ctx, func() { close(stopSending) }, func() {
				log.Info("second signal: skipping the cooldown and cancelling grabs")
				hardStop()
			})
			defer unsignal()
			cfg.StopSending = stopSending
			if cfg.DryRun {
				res, err := scan.Run(ctx, cfg)
				return interrupted(res, cfg, err)
			}
			pipe, err := scanPipeline(ctx, c, log, cfg, ck)
			if err != nil {
				return err
			}
			go func() {
				select {
				case <-pipe.Failed(): // an output failed: send nothing more
					hardStop()
				case <-ctx.Done():
				}
			}()
			cfg.OnHit = pipe.Hit
			if cfg.Checkpoint != "" {
				cfg.Commit, cfg.ReplyWindow = pipe.Commit, cfg.Cooldown
			}
			started := time.Now()
			res, err := scan.Run(ctx, cfg)
			if err != nil && (res == nil || res.Sent == 0) {
				pipe.Abort() // failed before the first probe: nothing written, nothing replaced
				return scanError(err)
			}
			sig.next(func() {
				log.Info("stopping: no new grabs; the grabs running finish within --grab-timeout (signal again to cancel them)")
				pipe.StopGrabs()
			})
			if c.Bool("banners") {
				log.Info("scan done; finishing the banner grabs")
			}
			counts, ferr := pipe.Finish()
			if ferr == nil {
				err = errors.Join(err, scan.SaveFinal(cfg, res, pipe.Parts()))
			} else {
				err = errors.Join(err, ferr, fmt.Errorf("no output was completed; the committed parts stay in place (see --resume)"))
			}
			if c.Bool("banners") {
				err = errors.Join(err, grabSummary(log, counts))
			}
			if m := c.String("metadata"); m != "" {
				err = errors.Join(err, writeMetadata(m, c, cfg, res, started))
			}
			logScan(log, res, counts)
			warnProxies(log, counts.Proxies)
			return interrupted(res, cfg, err)
		},
	}
}

// interrupted is the scan's error: err, or, for a scan a signal stopped
// before every probe was sent, how to continue it.
func interrupted(res *scan.Result, cfg scan.Config, err error) error {
	if err == nil && res != nil && res.Stopped == "signal" {
		msg := "interrupted before every probe was sent"
		if cfg.Checkpoint != "" {
			msg += fmt.Sprintf("; continue with --resume %s and the same targets and flags", cfg.Checkpoint)
		}
		return errors.New(msg)
	}
	return scanError(err)
}

// scanError maps a scan failure to its exit code.
func scanError(err error) error {
	if errors.Is(err, netif.ErrPortOverlap) || errors.Is(err, recv.ErrInterfaceBusy) {
		return usageError{err}
	}
	return err
}

// scanPipeline opens the scan's outputs; a resumed scan skips the pairs
// its earlier runs committed and folds their parts into its output.
func scanPipeline(ctx context.Context, c *cli.Context, log *slog.Logger, cfg scan.Config, ck *scan.Checkpoint) (*results.Pipeline, error) {
	var prior *results.Prior
	if ck != nil {
		var err error
		if prior, err = results.LoadPrior(ck.Outputs); err != nil {
			return nil, usageError{fmt.Errorf("resume %s: %w", c.String("resume"), err)}
		}
		if prior.Len() > 0 {
			log.Info("resuming: pairs committed by the earlier runs are not written again", "pairs", prior.Len(), "files", len(prior.Parts))
		}
	}
	o := results.Output{Commits: cfg.Checkpoint != "", Closed: c.Bool("output-closed")}
	pipe, err := openPipeline(ctx, c, log, o, c.Bool("banners"), uint16(cfg.Plan.Layout.Shard), prior)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{cfg.Checkpoint, c.String("metadata")} {
		if err := results.CheckWritable(p); err != nil {
			pipe.Abort()
			return nil, usageError{err}
		}
	}
	return pipe, nil
}

// warnProxies says which addresses answered every port alike.
func warnProxies(log *slog.Logger, px map[uint32]exposure.Proxy) {
	if len(px) == 0 {
		return
	}
	ports, first := 0, uint32(math.MaxUint32)
	for a, p := range px {
		ports += p.Ports
		first = min(first, a)
	}
	log.Warn(fmt.Sprintf("addresses answered %d or more ports with one SYN-ACK signature: a SYN proxy, tarpit or forging middlebox answers for them; their rows stay, reach review lists each address once", exposure.ProxyMinPorts),
		"addresses", len(px), "ports", ports, "first", target.Addr(first))
}

// logScan logs the scan's counters.
func logScan(log *slog.Logger, res *scan.Result, n results.Counts) {
	log.Info("scan finished", "sent", res.Sent, "targets", res.Targets, "refused", res.Refused, "drops", res.Drops,
		"seconds", res.Duration.Seconds(), "send_pps", float64(res.Sent)/max(res.SendDuration.Seconds(), 1e-9),
		"receiver", res.Receiver, "open", res.Open, "closed", res.Closed, "duplicates", res.Duplicates,
		"foreign", res.Foreign, "bad_cookie", res.BadCookie, "dropped_events", res.Dropped,
		"rows", n.Rows, "repeats_of_earlier_runs", n.Repeats)
	if res.XDP != nil {
		txErrors := any(res.XDPTXErrors)
		if !res.XDPTXCounted {
			txErrors = "not counted by the driver"
		}
		log.Info("xdp matcher", "synack", res.XDP.SynAck, "rst", res.XDP.Rst, "tx", res.XDP.TX, "reset_failed", res.XDP.ResetFailed,
			"bad_cookie", res.XDP.BadCookie, "malformed", res.XDP.Malformed, "passed", res.XDP.Passed, "resets", res.Resets, "xdp_tx_errors", txErrors)
	}
}

func scanConfig(c *cli.Context, log *slog.Logger) (scan.Config, *scan.Checkpoint, error) {
	var cfg scan.Config
	usage := func(err error) (scan.Config, *scan.Checkpoint, error) { return cfg, nil, usageError{err} }
	threads := c.Int("sender-threads")
	if !c.IsSet("sender-threads") {
		threads = defaultThreads(c.Float64("rate"), c.IsSet("bandwidth"), runtime.NumCPU())
	}
	var ck *scan.Checkpoint
	var seed *uint64
	if p := c.String("resume"); p != "" {
		var err error
		if ck, err = scan.LoadCheckpoint(p); err != nil {
			return usage(err)
		}
		if c.IsSet("seed") && c.Uint64("seed") != ck.Seed {
			return usage(fmt.Errorf("--seed %d differs from the checkpoint's seed %d", c.Uint64("seed"), ck.Seed))
		}
		seed = &ck.Seed
		if !c.IsSet("sender-threads") {
			threads = ck.Threads
		}
	}
	plan, err := buildPlan(c, log, threads, seed)
	if err != nil {
		return cfg, nil, err
	}
	if ck != nil {
		if err := ck.Matches(plan); err != nil {
			return usage(fmt.Errorf("resume %s: %w", c.String("resume"), err))
		}
	}
	window, err := parsePortWindow(c.String("source-port"))
	if err != nil {
		return usage(err)
	}
	opts, err := packet.ParseOptions(c.String("tcp-options"))
	if err != nil {
		return usage(err)
	}
	ttl := c.Uint("ttl")
	if ttl == 0 || ttl > 255 {
		return usage(fmt.Errorf("ttl %d: want 1-255", ttl))
	}
	rate := c.Float64("rate")
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return usage(fmt.Errorf("rate %g: want packets per second ≥ 0 (0 = as fast as possible)", rate))
	}
	var bw float64
	if s := c.String("bandwidth"); s != "" {
		if bw, err = parseBandwidth(s); err != nil {
			return usage(err)
		}
	}
	method := send.Method(c.String("send-method"))
	if method != send.MethodSendmmsg && method != send.MethodTXRing {
		return usage(fmt.Errorf("send method %q: want txring or sendmmsg", method))
	}
	ncfg := netif.Config{Iface: c.String("interface")}
	if ncfg.Iface != "" {
		if _, err := net.InterfaceByName(ncfg.Iface); err != nil {
			return usage(fmt.Errorf("interface %s: %w", ncfg.Iface, err))
		}
	}
	if s := c.String("source-ip"); s != "" {
		if ncfg.SourceIPs, err = netif.ParseSourceIPs(s); err != nil {
			return usage(err)
		}
		for _, a := range ncfg.SourceIPs {
			if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				return usage(fmt.Errorf("source address %s cannot send probes (unspecified, multicast or broadcast)", a))
			}
		}
	}
	if s := c.String("gateway-mac"); s != "" {
		mac, err := net.ParseMAC(s)
		if err != nil || len(mac) != 6 {
			return usage(fmt.Errorf("gateway MAC %q: want six hex bytes such as 02:00:00:00:00:01", s))
		}
		if mac[0]&1 != 0 || string(mac) == string(make([]byte, 6)) {
			return usage(fmt.Errorf("gateway MAC %s: a broadcast, multicast or all-zero MAC is no next hop", mac))
		}
		ncfg.GatewayMAC = mac
	}
	spec, err := blockSpec(c)
	if err != nil {
		return cfg, nil, err
	}
	block, err := target.BuildBlocklist(spec)
	if err != nil {
		return usage(err)
	}
	cfg = scan.Config{
		Plan: plan, Blocklist: block, RatePPS: rate, BandwidthBPS: bw, Probes: c.Int("probes"),
		SourcePorts: window, Net: ncfg, TCPOptions: opts, TTL: uint8(ttl), Method: method,
		MaxTargets: c.Uint64("max-targets"), DryRun: c.Bool("dry-run"), DryRunOut: c.App.Writer, Log: log,
		Receiver: c.String("receiver"), NoReset: c.Bool("no-reset"), Cooldown: c.Duration("cooldown"),
		Checkpoint: c.String("checkpoint"), CheckpointEvery: c.Duration("checkpoint-interval"), MaxRuntime: c.Duration("max-runtime"),
	}
	if ck != nil {
		cfg.Resume = ck.Positions
	}
	if cfg.Checkpoint == "" && ck != nil {
		cfg.Checkpoint = c.String("resume") // keep advancing the same checkpoint
	}
	if c.Duration("cooldown") < 0 || c.Duration("checkpoint-interval") < 0 {
		return usage(fmt.Errorf("durations must not be negative"))
	}
	switch cfg.Receiver {
	case "auto", "xdp", "afpacket":
	default:
		return usage(fmt.Errorf("receiver %q: want auto, xdp or afpacket", cfg.Receiver))
	}
	if !c.Bool("quiet") && !cfg.DryRun {
		cfg.StatusEvery = time.Second
		if f, ok := c.App.ErrWriter.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			cfg.Progress, cfg.ProgressOut = true, f
		}
	}
	if cfg.Probes < 1 || uint32(cfg.Probes) > window.Count {
		return usage(fmt.Errorf("probes %d: want 1 to the source-port range size %d", cfg.Probes, window.Count))
	}
	return cfg, ck, nil
}

// perThreadPPS is what one sender thread comfortably sends (it peaks near
// 0.47 Mpps on the 2-vCPU reference machine).
const perThreadPPS = 250_000

// defaultThreads picks the sender threads when -T is not given: one per
// perThreadPPS of the rate, at most one per core; all cores when the rate
// is unlimited or given as bandwidth. Fewer threads at low rates cost less
// CPU (each thread wakes per batch).
func defaultThreads(rate float64, bandwidth bool, cores int) int {
	if rate <= 0 || bandwidth {
		return cores
	}
	return min(cores, max(1, int(math.Ceil(rate/perThreadPPS))))
}

// blockSpec reads the blocklist flags again for the sender's last check.
func blockSpec(c *cli.Context) (target.Spec, error) {
	spec := target.Spec{NoDefaultBlocklist: c.Bool("no-default-blocklist")}
	for _, f := range c.StringSlice("blocklist-file") {
		es, err := readFilterFile(nil, "blocklist", f)
		if err != nil {
			return spec, err
		}
		spec.Block = append(spec.Block, es...)
	}
	return spec, nil
}

// parsePortWindow parses --source-port: "61000-65535" or a single port.
func parsePortWindow(s string) (packet.PortWindow, error) {
	if strings.Contains(s, ",") {
		return packet.PortWindow{}, fmt.Errorf("source-port %q: want one port or one range a-b, not a list", s)
	}
	ports, err := target.ParsePorts(s)
	if err != nil {
		return packet.PortWindow{}, fmt.Errorf("source-port: %w", err)
	}
	return packet.PortWindow{First: ports[0], Count: uint32(len(ports))}, nil
}

// parseBandwidth parses a bit rate such as 100M, 1.5G or 250000.
func parseBandwidth(s string) (float64, error) {
	mult := 1.0
	t := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(t, "K") || strings.HasSuffix(t, "k"):
		mult, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "M") || strings.HasSuffix(t, "m"):
		mult, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "G") || strings.HasSuffix(t, "g"):
		mult, t = 1e9, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("bandwidth %q: want a positive number of bit/s with optional K, M or G", s)
	}
	return v * mult, nil
}
