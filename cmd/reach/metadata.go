package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"golang.org/x/sys/unix"

	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// metadata is the record written with -m at the end of a scan, so runs are
// comparable (ZMap's metadata habit): the configuration as given, what the
// permutation was, counters and timings, and versions.
type metadata struct {
	Version   string            `json:"reach_version"`
	GoVersion string            `json:"go_version"`
	Kernel    string            `json:"kernel"`
	Args      []string          `json:"args"`
	Flags     map[string]string `json:"flags"`

	Seed       uint64 `json:"seed"`
	Prime      uint64 `json:"prime"`
	Generator  uint64 `json:"generator"`
	Start      uint64 `json:"start_element"`
	Shards     int    `json:"shards"`
	Shard      int    `json:"shard"`
	Threads    int    `json:"sender_threads"`
	Addresses  uint64 `json:"target_addresses"`
	Ports      string `json:"ports"`
	IndexSpace uint64 `json:"index_space"`

	Interface  string   `json:"interface"`
	SourceIPs  []string `json:"source_ips"`
	NextHopMAC string   `json:"next_hop_mac"`
	Receiver   string   `json:"receiver"`
	RatePPS    float64  `json:"rate_pps"`

	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at"`
	SendSeconds float64   `json:"send_seconds"`
	Seconds     float64   `json:"seconds"`

	Sent        uint64 `json:"sent"`
	Targets     uint64 `json:"targets_done"`
	Refused     uint64 `json:"refused_by_blocklist"`
	SendDrops   uint64 `json:"send_drops"`
	NoRoute     uint64 `json:"no_route"`
	Replies     uint64 `json:"replies"`
	Open        uint64 `json:"open"`
	Closed      uint64 `json:"closed"`
	Duplicates  uint64 `json:"duplicates"`
	Foreign     uint64 `json:"foreign"`
	BadCookie   uint64 `json:"bad_cookie"`
	RecvDropped uint64 `json:"receive_dropped"`
	// XDPTXErrors is null when the RSTs went through XDP_TX and how many
	// failed is unknown (scan.Result.XDPTXCounted).
	XDPTXErrors *uint64 `json:"xdp_tx_errors"`
	Resets      string  `json:"resets,omitempty"` // how SYN-ACKs were answered: xdp_tx, kernel or none
	HitRate     float64 `json:"hit_rate"`

	Checkpoint any `json:"checkpoint_positions"`
}

func writeMetadata(path string, c *cli.Context, cfg scan.Config, res *scan.Result, started time.Time) error {
	// the full configuration: every flag with its effective value
	flags := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		flags[name] = fmt.Sprint(c.Value(name))
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	ver := version
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	p := cfg.Plan
	m := metadata{
		Version: ver, GoVersion: runtime.Version(), Kernel: unix.ByteSliceToString(uts.Release[:]),
		Args: c.Args().Slice(), Flags: flags,
		Seed: p.Seed, Prime: p.Cycle.Prime(), Generator: p.Cycle.Generator(), Start: p.Cycle.Start(),
		Shards: p.Layout.Shards, Shard: p.Layout.Shard, Threads: p.Layout.Threads,
		Addresses: p.Space.Set().Len(), Ports: target.FormatPorts(p.Space.Ports()), IndexSpace: p.Space.Len(),
		Receiver: res.Receiver, RatePPS: res.RatePPS,
		StartedAt: started.UTC(), FinishedAt: time.Now().UTC(), SendSeconds: res.SendDuration.Seconds(), Seconds: res.Duration.Seconds(),
		Sent: res.Sent, Targets: res.Targets, Refused: res.Refused, SendDrops: res.Drops, NoRoute: res.NoRoute,
		Replies: res.Replies, Open: res.Open, Closed: res.Closed, Duplicates: res.Duplicates, Foreign: res.Foreign,
		BadCookie: res.BadCookie, RecvDropped: res.Dropped, Resets: res.Resets,
		Checkpoint: res.Positions,
	}
	if res.XDPTXCounted || res.Resets == "" {
		m.XDPTXErrors = &res.XDPTXErrors
	}
	if res.Targets > 0 {
		m.HitRate = float64(res.Open) / float64(res.Targets)
	}
	if res.Path != nil {
		m.Interface = res.Path.Iface.Name
		m.NextHopMAC = res.Path.NextHop.String()
		for _, a := range res.Path.SourceIPs {
			m.SourceIPs = append(m.SourceIPs, a.String())
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	of, err := export.OpenFile(path, nil) // a unique temporary name, renamed when complete
	if err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if _, err := of.Write(append(b, '\n')); err != nil {
		of.Abort()
		return fmt.Errorf("write metadata: %w", err)
	}
	if err := of.Commit(); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}
