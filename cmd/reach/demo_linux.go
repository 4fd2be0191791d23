package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/exposure"
)

// demoPorts are the ports the demo scans: those of the real servers and a
// few more. The XDP responder's ground truth opens 22, 80, 443, 3306, 5432,
// 6379 and 8080 on most addresses; in 198.19.1.0/24 the real servers
// answer through the far namespace's kernel.
const demoPorts = "21,22,23,80,443,3306,5432,6379,8080,8443,9200"

func demoCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build the simulated network (namespaces, 198.18.0.0/15 only), scan it, check the result against its ground truth, identify its real servers with --banners, review them against a demo policy, tear it down",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "targets", Value: "198.19.0.0/16", Usage: "targets inside 198.19.0.0/16"},
			&cli.Float64Flag{Name: "rate", Value: 100000, Usage: "send rate in pps"},
			&cli.StringFlag{Name: "out", Value: "demo-out", Usage: "directory for scan.parquet, metadata.json, services.parquet and review.csv"},
			&cli.StringFlag{Name: "policy", Value: "testdata/demo-policy.yaml", Usage: "intended exposure of the demo network, for the review"},
		},
		Action: func(c *cli.Context) (err error) {
			// SIGINT or SIGTERM: stop, then remove the namespaces, servers
			// and temporary files (the deferred closes run)
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.Context = ctx
			defer func() {
				if err != nil && ctx.Err() != nil {
					err = errors.New("demo interrupted: the simulated network, its servers and temporary files were removed")
				}
			}()
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("demo takes no arguments (got %q); use --targets", c.Args().First())}
			}
			if r := c.Float64("rate"); r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				return usageError{fmt.Errorf("rate %g: want packets per second ≥ 0", r)}
			}
			if err := testnet.Available(); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			es, err := target.ParseArgs([]string{c.String("targets")})
			if err != nil {
				return usageError{err}
			}
			for _, e := range es {
				if e.IsASN || e.First>>16 != 0xC613 || e.Last>>16 != 0xC613 {
					return usageError{fmt.Errorf("demo targets must lie inside 198.19.0.0/16, the simulated internet")}
				}
			}
			nw, err := testnet.New(c.Context, testnet.Options{AnyIP: true, GRO: true})
			if err != nil {
				return err
			}
			defer nw.Close()
			if err := nw.AttachResponderSection(c.Context, responder.Object, responder.AnswerButServers); err != nil {
				return err
			}
			if err := nw.StartServers(c.Context); err != nil {
				return err
			}
			log.Info("simulated network up", "scanner", nw.Scan, "internet", nw.Net,
				"responder", "XDP: 7 ports open on 6 of 7 addresses, every 11th address silent", "real_servers", "nginx, sshd, redis, postgresql, mariadb in "+testnet.ServerBlock.String())
			self, err := os.Executable()
			if err != nil {
				return err
			}
			out := c.App.Writer
			dir := c.String("out")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			result, meta := filepath.Join(dir, "scan.parquet"), filepath.Join(dir, "metadata.json")
			args := []string{"scan", "--no-default-blocklist", "--seed", "2026", "-p", demoPorts, "--rate", fmt.Sprint(c.Float64("rate")),
				"--cooldown", "1s", "--output-closed", "-o", result, "-m", meta, c.String("targets")}
			fmt.Fprintf(out, "$ ip netns exec %s reach %s\n", nw.Scan, strings.Join(args, " "))
			cmd := nw.Command(c.Context, nw.Scan, self, args...)
			cmd.Stdout, cmd.Stderr = c.App.ErrWriter, c.App.ErrWriter
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("scan in %s: %w", nw.Scan, err)
			}
			rows, err := export.ReadFile(result)
			if err != nil {
				return err
			}
			byPort := map[uint16][2]int{}
			shown := 0
			var servers []string
			reports := make([]testnet.Report, len(rows))
			for i, r := range rows {
				open := r.Status == "open"
				reports[i] = testnet.Report{Addr: r.Addr, Port: r.Port, Open: open}
				if s, ok := testnet.ServerAt(r.Addr, r.Port); ok && open {
					servers = append(servers, fmt.Sprintf("  %s:%d open: %s (%s)", target.Addr(r.Addr), r.Port, s.Name, s.Service))
				}
				n := byPort[r.Port]
				if open {
					n[0]++
					if shown < 5 {
						fmt.Fprintf(out, "  %s:%d open (ttl %d, window %d, mss %d)\n", target.Addr(r.Addr), r.Port, r.TTL, r.Window, r.MSS)
						shown++
					}
				} else {
					n[1]++
				}
				byPort[r.Port] = n
			}
			sort.Strings(servers)
			fmt.Fprintf(out, "real servers found:\n%s\n", strings.Join(servers, "\n"))
			fmt.Fprintf(out, "results: %s (%d rows), metadata: %s\n", result, len(rows), meta)
			var ports []int
			for p := range byPort {
				ports = append(ports, int(p))
			}
			sort.Ints(ports)
			fmt.Fprintf(out, "\nport   open  closed   (%.1f s)\n", time.Since(start).Seconds())
			for _, p := range ports {
				fmt.Fprintf(out, "%5d %6d %7d\n", p, byPort[uint16(p)][0], byPort[uint16(p)][1])
			}
			scanned, err := target.ParsePorts(demoPorts)
			if err != nil {
				return err
			}
			scope := testnet.Scope{Ports: scanned}
			for _, e := range es {
				scope.Ranges = append(scope.Ranges, target.Range{First: e.First, Last: e.Last})
			}
			v := testnet.Verify(testnet.Truth{Servers: true}, scope, reports)
			fmt.Fprintf(out, "%d of %d answering pairs answered (silent hosts stay silent); %d disagree with the ground truth, %d repeated\n", v.Reported, v.Answering, v.Wrong, v.Duplicates)
			if !v.Exact() {
				return fmt.Errorf("demo: result differs from the ground truth: %v", v)
			}
			return demoReview(c, nw, self, dir)
		},
	}
}

// demoServicePorts are the ports of the real servers, usual and unusual.
const demoServicePorts = "21,22,80,443,2200,3306,5432,6379,7000,8080,8443,9200,9444,10080"

// demoReview scans the real servers' block with --banners and reviews what
// answers against the demo policy: the summary a security reviewer reads
// first.
func demoReview(c *cli.Context, nw *testnet.Network, self, dir string) error {
	out := c.App.Writer
	pol, err := exposure.LoadPolicy(c.String("policy"), nil)
	if err != nil {
		return usageError{err}
	}
	services := filepath.Join(dir, "services.parquet")
	args := []string{"scan", "--no-default-blocklist", "--seed", "2026", "-p", demoServicePorts, "--rate", "5000",
		"--cooldown", "1s", "--banners", "--grab-timeout", "8s", "-q", "-o", services, testnet.ServerBlock.String()}
	fmt.Fprintf(out, "\n$ ip netns exec %s reach %s\n", nw.Scan, strings.Join(args, " "))
	cmd := nw.Command(c.Context, nw.Scan, self, args...)
	cmd.Stdout, cmd.Stderr = c.App.ErrWriter, c.App.ErrWriter
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("banner scan in %s: %w", nw.Scan, err)
	}
	rows, err := export.ReadFile(services)
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Addr != rows[j].Addr {
			return rows[i].Addr < rows[j].Addr
		}
		return rows[i].Port < rows[j].Port
	})
	for _, r := range rows {
		tls := ""
		if r.TLS.SHA256 != "" {
			tls = fmt.Sprintf(", %s, certificate %s (self-signed %v, expires %s)", r.TLS.Version, r.TLS.Subject, r.TLS.SelfSigned, r.TLS.NotAfter.Format("2006-01-02"))
		}
		auth := ""
		if r.Auth == "none" {
			auth = ", answers without credentials"
		}
		fmt.Fprintf(out, "  %s:%d %s: %s %s (%s)%s%s\n", target.Addr(r.Addr), r.Port, r.GrabStatus, r.Product, r.Version, r.Service, auth, tls)
	}
	fmt.Fprintf(out, "\n$ reach review --policy %s %s -o %s\n", c.String("policy"), services, filepath.Join(dir, "review.csv"))
	rep := exposure.Review(rows, pol)
	if err := exposure.WriteText(out, rep); err != nil {
		return err
	}
	w, err := export.Create(filepath.Join(dir, "review.csv"), export.CSV)
	if err != nil {
		return err
	}
	for _, r := range rep.Rows() {
		if err := w.Write(&r); err != nil {
			return errors.Join(err, w.Close())
		}
	}
	return w.Close()
}
