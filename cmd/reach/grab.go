package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
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

// applyGrab copies a grab result into the grab columns of r.
func applyGrab(r *export.Row, res fingerprint.Result) {
	r.Service, r.Product, r.Version, r.Banner = res.Service, res.Product, res.Version, res.Banner
	r.GrabStatus, r.GrabError, r.Auth = string(res.Status), res.Error, string(res.Auth)
	r.Details = ""
	if len(res.Details) > 0 {
		b, _ := json.Marshal(res.Details) // map keys sorted: stable text
		r.Details = string(b)
	}
	r.TLS = export.TLSRow{}
	if res.TLS != nil {
		r.TLS.Version, r.TLS.Cipher, r.TLS.ALPN = res.TLS.Version, res.TLS.Cipher, res.TLS.ALPN
		if l := res.TLS.Leaf(); l != nil {
			r.TLS.Subject, r.TLS.Issuer, r.TLS.SANs = l.Subject, l.Issuer, strings.Join(l.SANs, ",")
			r.TLS.NotBefore, r.TLS.NotAfter, r.TLS.SHA256 = l.NotBefore, l.NotAfter, l.SHA256
			r.TLS.SelfSigned, r.TLS.Expired = l.SelfSigned, l.Expired
			b, _ := json.Marshal(res.TLS.Chain)
			r.TLS.Chain = string(b)
		}
	}
}

// grabLine is the one-line text of a grab result on stdout:
// ip,port,service,product,version,status.
func grabLine(r *export.Row) string {
	var b strings.Builder
	w := csv.NewWriter(&b) // RFC 4180 quoting for what servers chose to call themselves
	w.Write([]string{target.Addr(r.Addr).String(), strconv.Itoa(int(r.Port)), r.Service, r.Product, r.Version, r.GrabStatus})
	w.Flush()
	return b.String()
}

// syncWriter serialises writes from the grab workers and the receiver.
type syncWriter struct {
	mu   sync.Mutex
	file export.Writer
	out  io.Writer
	err  error
}

func (s *syncWriter) write(r *export.Row, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		if err := s.file.Write(r); err != nil && s.err == nil {
			s.err = err
		}
	}
	if line != "" && s.out != nil {
		io.WriteString(s.out, line)
	}
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
column with -o. Exit codes: 0 done (whatever each target answered), 1 runtime failure,
2 bad flags or input (nothing was grabbed).`,
		Flags: append(grabFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `PATH` (.csv, .jsonl, .parquet, .arrow)"},
			&cli.StringFlag{Name: "output-format", Aliases: []string{"O"}, Usage: "force the output format: csv, jsonl, parquet or arrow"},
			&cli.BoolFlag{Name: "closed", Usage: "also grab pairs a reach output marks closed"},
		),
		Action: func(c *cli.Context) error {
			if c.Args().Len() == 0 {
				return usageError{errors.New("grab needs a FILE of targets (or - for stdin)")}
			}
			if err := flagAfterArgs(c); err != nil {
				return err
			}
			var rows []export.Row
			for _, p := range c.Args().Slice() {
				rs, err := readGrabTargets(p, c.App.Reader, c.Bool("closed"))
				if err != nil {
					return usageError{err}
				}
				rows = append(rows, rs...)
			}
			pool, err := newPool(c)
			if err != nil {
				return err
			}
			w := &syncWriter{}
			if w.file, err = openOutput(c); err != nil {
				return err
			}
			if w.file == nil {
				w.out = c.App.Writer
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			counts := map[fingerprint.Status]int{}
			var mu sync.Mutex
			b := pool.Start(ctx)
			for i := range rows {
				r := &rows[i]
				a := netip.AddrPortFrom(target.Addr(r.Addr), r.Port)
				b.Submit(fingerprint.Target{AddrPort: a}, func(res fingerprint.Result) {
					applyGrab(r, res)
					if r.Status == "" { // from a list: what the connection found
						switch {
						case res.Connected:
							r.Status = "open"
						case res.Status == fingerprint.StatusRefused:
							r.Status = "closed"
						default:
							r.Status = "filtered"
						}
					}
					mu.Lock()
					counts[res.Status]++
					mu.Unlock()
					w.write(r, grabLine(r))
				})
			}
			b.Wait()
			if w.file != nil {
				err = errors.Join(w.err, w.file.Close())
			}
			log.Info("grab finished", "targets", len(rows), "seconds", time.Since(start).Seconds(),
				"success", counts[fingerprint.StatusSuccess], "no_banner", counts[fingerprint.StatusNoBanner],
				"timeout", counts[fingerprint.StatusTimeout], "refused", counts[fingerprint.StatusRefused],
				"reset", counts[fingerprint.StatusReset], "tls_error", counts[fingerprint.StatusTLSError],
				"protocol_error", counts[fingerprint.StatusProtocolError])
			if ctx.Err() != nil && err == nil {
				err = errors.New("interrupted: targets not grabbed yet are reported as timeouts")
			}
			return err
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
				if r.Status == "open" || closed {
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
