package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/engine/target/asn"
)

// targetFlags select the addresses to scan; shared by every command that
// takes targets.
func targetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "input-file", Aliases: []string{"I"}, Usage: "read targets from `FILE`, one a line (repeatable)"},
		&cli.StringSliceFlag{Name: "allowlist-file", Aliases: []string{"w"}, Usage: "scan only addresses in `FILE` (repeatable)"},
		&cli.StringSliceFlag{Name: "blocklist-file", Aliases: []string{"b"}, Usage: "never scan addresses in `FILE`; beats the allowlist (repeatable)"},
		&cli.BoolFlag{Name: "no-default-blocklist", Usage: "lift the built-in blocklist of IANA special-purpose ranges (RFC 6890)"},
		&cli.StringFlag{Name: "asn-db", Usage: "IP-to-AS dataset `FILE` for AS targets (pfx2as, ip2asn TSV, ip-location-db CSV, mmdb; gzip ok)"},
	}
}

// buildSet turns the command line into the scan's address set. Errors are
// usage errors: nothing has been sent.
func buildSet(c *cli.Context, log *slog.Logger) (*target.Set, error) {
	var spec target.Spec
	var args []string
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "@") {
			es, err := target.ReadFile(a[1:])
			if err != nil {
				return nil, usageError{err}
			}
			spec.Targets = append(spec.Targets, es...)
			continue
		}
		args = append(args, a)
	}
	es, err := target.ParseArgs(args)
	if err != nil {
		return nil, usageError{err}
	}
	spec.Targets = append(spec.Targets, es...)
	for _, f := range c.StringSlice("input-file") {
		es, err := target.ReadFile(f)
		if err != nil {
			return nil, usageError{err}
		}
		spec.Targets = append(spec.Targets, es...)
	}
	for _, f := range c.StringSlice("allowlist-file") {
		es, err := readFilterFile(log, "allowlist", f)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			// an empty allowlist would otherwise mean "no restriction"
			return nil, usageError{fmt.Errorf("allowlist %s has no entries", f)}
		}
		spec.Allow = append(spec.Allow, es...)
	}
	for _, f := range c.StringSlice("blocklist-file") {
		es, err := readFilterFile(log, "blocklist", f)
		if err != nil {
			return nil, err
		}
		spec.Block = append(spec.Block, es...)
	}
	spec.NoDefaultBlocklist = c.Bool("no-default-blocklist")
	if p := c.String("asn-db"); p != "" {
		db, err := asn.Open(p)
		if err != nil {
			return nil, usageError{err}
		}
		spec.ASN = db
	}
	for _, list := range [][]target.Entry{spec.Targets, spec.Allow, spec.Block} {
		for _, e := range list {
			if e.Warning != "" {
				log.Warn(e.Warning, "source", e.Source)
			}
		}
	}
	set, err := target.Build(spec)
	if err != nil {
		return nil, usageError{err}
	}
	return set, nil
}

// readFilterFile reads an allow or block list (kind names it). Its IPv6
// entries are skipped with one warning for the file naming the first line
// and the count (with a nil log, silently: the list was read before).
func readFilterFile(log *slog.Logger, kind, path string) ([]target.Entry, error) {
	es, skipped, err := target.ReadFilterFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	if skipped.Count > 0 && log != nil {
		log.Warn(kind+" has IPv6 entries; reach scans IPv4 only and skips them", "file", path, "first", skipped.First, "entry", skipped.Text, "count", skipped.Count)
	}
	return es, nil
}

func targetsCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "targets",
		Usage:     "print the merged target prefixes after allow- and blocklists, and their address count",
		ArgsUsage: "TARGET... (address, CIDR, a-b range, AS number, @FILE)",
		Flags: append(targetFlags(),
			&cli.BoolFlag{Name: "count", Usage: "print only the number of addresses"},
		),
		Action: func(c *cli.Context) error {
			set, err := buildSet(c, log)
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(c.App.Writer, 64*1024)
			defer w.Flush()
			if c.Bool("count") {
				fmt.Fprintln(w, set.Len())
				return nil
			}
			prefixes := set.Prefixes()
			for _, p := range prefixes {
				fmt.Fprintln(w, p)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "%d addresses in %d prefixes\n", set.Len(), len(prefixes))
			return nil
		},
	}
}

func orderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "ports", Aliases: []string{"p"}, Usage: "ports to probe, e.g. `22,80,443,8000-8100` (required; repeatable)"},
		&cli.Uint64Flag{Name: "seed", Usage: "permutation and cookie seed; the same seed gives the same order (default: random, logged; required with --shards > 1, the same on every shard)", DefaultText: "random"},
		&cli.IntFlag{Name: "shards", Value: 1, Usage: "split the scan across this many hosts (at most 65536)"},
		&cli.IntFlag{Name: "shard", Value: 0, Usage: "this host's shard, 0-based"},
	}
}

// seedFrom returns --seed, or a random seed that is logged so the run can be
// repeated. Shards of one scan must walk the same permutation, so with
// --shards > 1 a random seed is refused: each host would pick its own order
// and the shards would overlap and miss pairs.
func seedFrom(c *cli.Context, log *slog.Logger) (uint64, error) {
	if c.IsSet("seed") {
		return c.Uint64("seed"), nil
	}
	if n := c.Int("shards"); n > 1 {
		return 0, usageError{fmt.Errorf("--shards %d without --seed: every shard would pick its own random order; give the same --seed on every shard", n)}
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random seed: %w", err)
	}
	s := binary.LittleEndian.Uint64(b[:])
	log.Info("random seed; pass --seed to repeat this order", "seed", s)
	return s, nil
}

// buildPlan builds targets × ports and the permutation. seed, when not nil,
// is used instead of --seed (a resumed scan takes its checkpoint's).
func buildPlan(c *cli.Context, log *slog.Logger, threads int, seed *uint64) (*scan.Plan, error) {
	if !c.IsSet("ports") {
		return nil, usageError{fmt.Errorf("no ports: give -p/--ports, e.g. -p 80 or -p 22,80,443")}
	}
	ports, err := target.ParsePorts(strings.Join(c.StringSlice("ports"), ","))
	if err != nil {
		return nil, usageError{err}
	}
	set, err := buildSet(c, log)
	if err != nil {
		return nil, err
	}
	space, err := target.NewSpace(set, ports)
	if err != nil {
		return nil, usageError{err}
	}
	if seed == nil {
		s, err := seedFrom(c, log)
		if err != nil {
			return nil, err
		}
		seed = &s
	}
	plan, err := scan.NewPlan(space, *seed, permute.Layout{Shards: c.Int("shards"), Shard: c.Int("shard"), Threads: threads})
	if err != nil {
		return nil, usageError{err}
	}
	return plan, nil
}

func iterateCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "iterate",
		Usage:     "print ip,port in scan order without sending anything (needs no privileges)",
		ArgsUsage: "TARGET... (address, CIDR, a-b range, AS number, @FILE)",
		Flags: append(append(targetFlags(), orderFlags()...),
			&cli.IntFlag{Name: "sender-threads", Aliases: []string{"T"}, Value: 1, Usage: "interleave the runs of this many sender threads"},
			&cli.BoolFlag{Name: "count", Usage: "print only the number of (address, port) pairs of this shard (with --shards > 1 it walks the shard, about 10 ns a pair)"},
		),
		Action: func(c *cli.Context) error {
			plan, err := buildPlan(c, log, c.Int("sender-threads"), nil)
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(c.App.Writer, 256*1024)
			defer w.Flush()
			if c.Bool("count") {
				n, err := plan.Count(c.Context)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, n)
				return nil
			}
			buf := make([]byte, 0, 32)
			return plan.Iterate(c.Context, func(a uint32, port uint16) error {
				buf = appendPair(buf[:0], a, port)
				_, err := w.Write(buf)
				return err
			})
		},
	}
}

// appendPair appends "a.b.c.d,port\n".
func appendPair(b []byte, a uint32, port uint16) []byte {
	b = netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).AppendTo(b)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(port), 10)
	return append(b, '\n')
}
