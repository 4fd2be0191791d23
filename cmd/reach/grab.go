package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
	"github.com/reachscan/reach/results"
)

// grabFlags are the banner-grab flags of reach scan --banners and reach grab.
func grabFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "grab-workers", Value: 256, Usage: "targets grabbed at once"},
		&cli.DurationFlag{Name: "grab-timeout", Value: 10 * time.Second, Usage: "one overall deadline per target, covering every dial, read, TLS handshake and follow-up probe"},
		&cli.IntFlag{Name: "max-banner", Value: 64 << 10, Usage: "most bytes of a service's data kept or read at once per target"},
		&cli.Float64Flag{Name: "grab-rate", Usage: "new grab connections per second across all workers (0 = no cap)"},
		&cli.IntFlag{Name: "grab-per-host", Value: 4, Usage: "grabs running at once against one address"},
	}
}

// newPool builds the grab pool from the grab flags.
func newPool(c *cli.Context) (*fingerprint.Pool, error) {
	w, to, mb, gr, ph := c.Int("grab-workers"), c.Duration("grab-timeout"), c.Int("max-banner"), c.Float64("grab-rate"), c.Int("grab-per-host")
	switch {
	case w < 1 || w > 100_000:
		return nil, usageError{fmt.Errorf("grab-workers %d: want 1 to 100000", w)}
	case to <= 0:
		return nil, usageError{fmt.Errorf("grab-timeout %s: want a positive duration", to)}
	case mb < 64 || mb > 16<<20:
		return nil, usageError{fmt.Errorf("max-banner %d: want 64 bytes to 16 MiB", mb)}
	case gr < 0 || gr != gr:
		return nil, usageError{fmt.Errorf("grab-rate %g: want connections per second ≥ 0", gr)}
	case ph < 1:
		return nil, usageError{fmt.Errorf("grab-per-host %d: want at least 1", ph)}
	}
	return fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Fallback: registry.Fallback(),
		Workers: w, Timeout: to, MaxBanner: mb, Rate: gr, PerAddr: ph})
}

func grabCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "grab",
		Usage: "grab banners from open ports and identify their services",
		ArgsUsage: `FILE... (a reach output file: .parquet, .arrow, .jsonl, or reach's .csv; or a list of
   "ip,port" or "ip:port" lines, # comments allowed; - reads the list from stdin)`,
		Description: `Each target gets one overall deadline (--grab-timeout). The service is identified by what
answers, not by the port: the grabbers that claim the port first, then what the server says
unprompted, then TLS on any port that answers a ClientHello (and the protocol inside it), then
cheap generic probes. Results: ip,port,service,product,version,status on stdout, or every
column with -o. The first SIGINT, SIGTERM or SIGHUP starts no new grab (the running ones
finish; targets never grabbed keep no grab status), the next cancels. Exit codes: 0 done
(whatever each target answered), 1 runtime failure, an interrupted run or grabs that failed
on this host (local-error: out of file descriptors, buffers or addresses), 2 bad flags or
input (nothing was grabbed).`,
		Before: listFields,
		Flags: append(append(grabFlags(), outputFlags("write results to `PATH` (.csv, .jsonl, .parquet, .arrow; - for stdout; default: ip,port,service,product,version,status lines)")...),
			&cli.BoolFlag{Name: "closed", Usage: "also grab pairs a reach output marks closed"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar or status line"},
		),
		Action: func(c *cli.Context) error {
			if c.Args().Len() == 0 {
				return usageError{errors.New("grab needs a FILE of targets (or - for stdin)")}
			}
			var rows []export.Row
			for _, p := range c.Args().Slice() {
				rs, err := readGrabTargets(p, c.App.Reader, c.Bool("closed"))
				if err != nil {
					return usageError{err}
				}
				rows = append(rows, rs...)
			}
			ctx, cancel := context.WithCancel(c.Context)
			defer cancel()
			pipe, err := openPipeline(ctx, c, log, results.Output{}, true, 0, nil)
			if err != nil {
				return err
			}
			_, unsignal := handleSignals(ctx, func() {
				log.Info("stopping: no new grabs; the grabs running finish within --grab-timeout (signal again to cancel them)")
				pipe.StopGrabs()
			}, func() {
				log.Info("second signal: cancelling the grabs running")
				cancel()
			})
			defer unsignal()
			start := time.Now()
			log.Info("grabbing", "targets", len(rows), "workers", c.Int("grab-workers"), "timeout", c.Duration("grab-timeout"))
			stopProgress := showProgress(c, log, pipe, len(rows), c.Bool("quiet"))
			for i := range rows {
				pipe.Grab(&rows[i])
			}
			counts, err := pipe.Finish()
			stopProgress()
			log.Info("grab finished", "targets", len(rows), "seconds", time.Since(start).Seconds())
			return errors.Join(err, grabSummary(log, counts))
		},
	}
}

// readGrabTargets reads path: a reach output file (by extension, or a CSV
// with reach's header) whose open rows are kept whole, or a list of
// "ip,port" / "ip:port" lines. A bad line is an error naming path and line.
func readGrabTargets(path string, stdin io.Reader, closed bool) ([]export.Row, error) {
	if path != "-" {
		if f, err := export.FormatOf(path); err == nil && (f != export.CSV || isReachCSV(path)) {
			rows, err := export.ReadFile(path)
			if err != nil {
				return nil, err
			}
			out := rows[:0]
			for _, r := range rows {
				if r.Status == export.StatusOpen || closed {
					out = append(out, r)
				}
			}
			return out, nil
		}
	}
	var in io.Reader = stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in, name = f, path
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 4096)
	var out []export.Row
	seen := map[pairKey]bool{}
	now := time.Now().UTC()
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" || (line == 1 && strings.HasPrefix(s, "ip,")) {
			continue
		}
		a, p, err := parseIPPort(s)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		k := pairKey{target.U32(a), p}
		if seen[k] {
			continue // each pair once
		}
		seen[k] = true
		if closedCol(s) && !closed {
			continue // a reach ip,port,closed line
		}
		out = append(out, export.Row{Time: now, Addr: k.addr, Port: p}) // Status set by the grab
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

type pairKey struct {
	addr uint32
	port uint16
}

// closedCol reports whether a list line's third field says closed.
func closedCol(s string) bool {
	f := strings.Split(s, ",")
	return len(f) >= 3 && strings.TrimSpace(f[2]) == "closed"
}

// parseIPPort parses "ip,port", "ip:port" or "ip,port,anything".
func parseIPPort(s string) (netip.Addr, uint16, error) {
	var ip, port string
	if f := strings.Split(s, ","); len(f) >= 2 {
		ip, port = strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
	} else if i := strings.LastIndexByte(s, ':'); i > 0 {
		ip, port = s[:i], s[i+1:]
	} else {
		return netip.Addr{}, 0, fmt.Errorf("%q: want ip,port or ip:port", s)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return netip.Addr{}, 0, fmt.Errorf("%q: not an IPv4 address", ip)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.Addr{}, 0, fmt.Errorf("%q: port must be 1-65535", port)
	}
	return a, uint16(n), nil
}

func isReachCSV(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 16)
	n, _ := io.ReadFull(f, b)
	return strings.HasPrefix(string(b[:n]), "ts,ip,ip_u32,")
}
