package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/target"
)

// demoPorts are the ports the demo scans; the responder's ground truth
// opens 22, 80, 443, 3306, 5432, 6379 and 8080 on most addresses.
const demoPorts = "21,22,23,80,443,3306,5432,6379,8080,9200"

func demoCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build the simulated network (namespaces, 198.18.0.0/15 only), scan it, check the result against its ground truth, tear it down",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "targets", Value: "198.19.0.0/20", Usage: "targets inside 198.19.0.0/16"},
			&cli.Float64Flag{Name: "rate", Value: 50000, Usage: "send rate in pps"},
		},
		Action: func(c *cli.Context) error {
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
			nw, err := testnet.New(c.Context, testnet.Options{GRO: true})
			if err != nil {
				return err
			}
			defer nw.Close()
			if err := nw.AttachResponder(c.Context, responder.Object); err != nil {
				return err
			}
			log.Info("simulated network up", "scanner", nw.Scan, "internet", nw.Net, "responder", "XDP, ground truth: 7 ports open on 6 of 7 addresses")
			self, err := os.Executable()
			if err != nil {
				return err
			}
			out := c.App.Writer
			args := []string{"scan", "--no-default-blocklist", "--seed", "2026", "-p", demoPorts, "--rate", fmt.Sprint(c.Float64("rate")),
				"--cooldown", "1s", "--output-closed", c.String("targets")}
			fmt.Fprintf(out, "$ ip netns exec %s reach %s\n", nw.Scan, strings.Join(args, " "))
			cmd := nw.Command(c.Context, nw.Scan, self, args...)
			cmd.Stderr = c.App.ErrWriter
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			start := time.Now()
			if err := cmd.Start(); err != nil {
				return err
			}
			byPort := map[uint16][2]int{}
			wrong, shown := 0, 0
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.Split(sc.Text(), ",")
				if len(f) != 3 {
					continue
				}
				a, err := target.ParseEntry(f[0])
				p, _ := strconv.Atoi(f[1])
				if err != nil {
					continue
				}
				open := f[2] == "open"
				if open != responder.Open(a.First, uint16(p)) {
					wrong++
				}
				n := byPort[uint16(p)]
				if open {
					n[0]++
					if shown < 10 {
						fmt.Fprintf(out, "  %s\n", sc.Text())
						shown++
					}
				} else {
					n[1]++
				}
				byPort[uint16(p)] = n
			}
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("scan in %s: %w", nw.Scan, err)
			}
			var ports []int
			for p := range byPort {
				ports = append(ports, int(p))
			}
			sort.Ints(ports)
			fmt.Fprintf(out, "\nport   open  closed   (%.1f s)\n", time.Since(start).Seconds())
			total := 0
			for _, p := range ports {
				fmt.Fprintf(out, "%5d %6d %7d\n", p, byPort[uint16(p)][0], byPort[uint16(p)][1])
				total += byPort[uint16(p)][0] + byPort[uint16(p)][1]
			}
			want := 0
			for _, e := range es {
				want += int(e.Size()) * len(strings.Split(demoPorts, ","))
			}
			fmt.Fprintf(out, "%d of %d pairs answered; %d disagree with the ground truth\n", total, want, wrong)
			if wrong > 0 || total != want {
				return fmt.Errorf("demo: result differs from the ground truth")
			}
			return nil
		},
	}
}
