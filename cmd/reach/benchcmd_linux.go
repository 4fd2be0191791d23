package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/bench"
)

func benchCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure reach against ZMap and masscan in the simulated network (namespaces, 198.18.0.0/15 only): send rate, recall, CPU",
		Description: `Modes: sink (the far side drops everything in XDP: maximum send rate with 1 and all
sender threads), recall (an XDP responder answers by a known ground truth: the share of
open pairs each tool reports at each rate), idle (CPU per million probes at a low rate).
Every configuration runs --runs times, the tools alternating; the table gives medians and
[min–max] and reach's ratios against each peer measured in the same invocation.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mode", Value: "sink,recall,idle", Usage: "modes to run, comma-separated: sink, recall, idle"},
			&cli.StringFlag{Name: "tools", Usage: "tools to compare, comma-separated: reach, reach-checkpoint (reach committing its output at a checkpoint every second), zmap, masscan (default: reach and the peers installed)"},
			&cli.IntFlag{Name: "runs", Value: 5, Usage: "runs per configuration"},
			&cli.StringFlag{Name: "rates", Value: "10000,100000,300000,max", Usage: "recall mode's rates in pps, comma-separated; max = as fast as each tool can"},
			&cli.StringFlag{Name: "threads", Usage: "sink mode's sender thread counts (default: 1 and the number of CPUs)"},
			&cli.DurationFlag{Name: "window", Value: 3 * time.Second, Usage: "sink mode: measured time after a 1 s warm-up"},
			&cli.IntFlag{Name: "idle-rate", Value: 10000, Usage: "idle mode: rate in pps"},
			&cli.DurationFlag{Name: "idle-time", Value: 10 * time.Second, Usage: "idle mode: measured time after a 1 s warm-up"},
			&cli.StringFlag{Name: "json", Usage: "write every run, the machine and tool versions as JSON to `FILE`"},
			&cli.BoolFlag{Name: "install-peers", Usage: "install ZMap and masscan with apt-get first"},
		},
		Action: func(c *cli.Context) error {
			// SIGINT or SIGTERM: stop, then remove the namespaces, servers
			// and temporary files (the deferred closes run)
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.Context = ctx
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("bench takes no arguments (got %q)", c.Args().First())}
			}
			cfg := bench.Config{Runs: c.Int("runs"), Window: c.Duration("window"), IdleRate: c.Int("idle-rate"), IdleTime: c.Duration("idle-time")}
			cfg.Modes = splitList(c.String("mode"))
			cfg.Tools = splitList(c.String("tools"))
			for _, r := range splitList(c.String("rates")) {
				if r == "max" {
					cfg.Rates = append(cfg.Rates, 0)
					continue
				}
				v, err := strconv.Atoi(strings.TrimSuffix(r, "k"))
				if strings.HasSuffix(r, "k") {
					v *= 1000
				}
				if err != nil || v <= 0 {
					return usageError{fmt.Errorf("rate %q: want a positive number of pps or max", r)}
				}
				cfg.Rates = append(cfg.Rates, v)
			}
			for _, t := range splitList(c.String("threads")) {
				v, err := strconv.Atoi(t)
				if err != nil || v <= 0 || v > 64 {
					return usageError{fmt.Errorf("threads %q: want 1 to 64", t)}
				}
				cfg.Threads = append(cfg.Threads, v)
			}
			if p := c.String("json"); p != "" {
				if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
					return usageError{fmt.Errorf("--json %s: directory %s does not exist", p, filepath.Dir(p))}
				}
			}
			for _, d := range []string{"window", "idle-time"} {
				if c.Duration(d) < time.Second {
					return usageError{fmt.Errorf("--%s %s: want at least 1s", d, c.Duration(d))}
				}
			}
			if c.Int("runs") <= 0 {
				return usageError{fmt.Errorf("runs %d: want at least 1", c.Int("runs"))}
			}
			if c.Bool("install-peers") {
				log.Info("installing zmap and masscan")
				cmd := exec.CommandContext(c.Context, "apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends", "zmap", "masscan")
				cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("install peers: %w\n%s", err, out)
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			// run a private copy: a rebuild of the binary during the
			// benchmark must not change what is measured
			tmp, err := os.MkdirTemp("", "reach-bench-bin-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if cfg.Reach, err = copyExecutable(self, filepath.Join(tmp, "reach")); err != nil {
				return err
			}
			cfg.Log = c.App.ErrWriter
			if os.Getenv("REACH_RUN_MAIN") != "" {
				cfg.Env = []string{"REACH_RUN_MAIN=1"} // under go test: the test binary is reach
			}
			h, err := bench.New(cfg)
			if err != nil {
				return usageError{err}
			}
			rep, err := h.Run(c.Context)
			if rep != nil {
				if rep.Commit = commit(); rep.Commit == "" {
					rep.Commit = version // make build stamps git describe
				}
				if path := c.String("json"); path != "" {
					if err := writeJSON(path, rep); err != nil {
						return err
					}
				}
				if len(rep.Summary) > 0 {
					if err := rep.WriteTable(c.App.Writer); err != nil {
						return err
					}
				}
				if err != nil && ctx.Err() != nil {
					err = errors.New("interrupted: the simulated networks were removed; runs so far are above")
				}
				if err == nil {
					if n := rep.Failed(); n > 0 {
						return fmt.Errorf("bench: %d of %d runs failed (see the log above)", n, len(rep.Runs))
					}
				}
			}
			return err
		},
	}
}

func copyExecutable(from, to string) (string, error) {
	b, err := os.ReadFile(from)
	if err != nil {
		return "", err
	}
	return to, os.WriteFile(to, b, 0o755)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// commit is the VCS revision the binary was built from, when recorded.
func commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}
