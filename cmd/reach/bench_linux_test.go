package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachscan/reach/bench"
	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// BenchmarkReceive scans 198.19.0.0/16 × the responder's 7 open-capable
// ports at full speed against the XDP responder and reports, per receiver,
// the replies per second delivered to user space, the replies lost against
// the ground truth, and reach's CPU seconds per million replies.
func BenchmarkReceive(b *testing.B) {
	if err := testnet.Available(); err != nil {
		b.Skipf("simulated network unavailable: %v", err)
	}
	var wantOpen, silent int
	for a := uint32(0xC6130000); a <= 0xC613FFFF; a++ {
		if responder.Silent(a) {
			silent++
		}
		for _, p := range []uint16{22, 80, 443, 3306, 5432, 6379, 8080} {
			if responder.Open(a, p) {
				wantOpen++
			}
		}
	}
	probes := (65536 - silent) * 7 // silent hosts never answer
	for _, receiver := range []string{"xdp", "afpacket"} {
		b.Run(receiver, func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				nw, err := testnet.New(ctx, testnet.Options{GRO: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := nw.AttachResponder(ctx, responder.Object); err != nil {
					nw.Close()
					b.Fatal(err)
				}
				if receiver == "afpacket" {
					if err := nw.AttachScanPassthrough(ctx, responder.Object); err != nil {
						nw.Close()
						b.Fatal(err)
					}
				}
				self, _ := os.Executable()
				cmd := nw.Command(ctx, nw.Scan, self, "scan", "--no-default-blocklist", "--seed", "3", "-p", "22,80,443,3306,5432,6379,8080",
					"--rate", "0", "--receiver", receiver, "--cooldown", "1s", "--output-closed", "--quiet", "198.19.0.0/16")
				cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err = cmd.Run()
				stats, _ := nw.Command(ctx, nw.Net, "ethtool", "-S", nw.NetIf).CombinedOutput()
				nw.Close()
				cancel()
				if err != nil {
					b.Fatalf("%v\n%s", err, errb.String())
				}
				open := strings.Count(out.String(), ",open\n")
				for l := range strings.SplitSeq(out.String(), "\n") {
					ip, rest, ok := strings.Cut(l, ",")
					if !ok {
						continue
					}
					port, st, _ := strings.Cut(rest, ",")
					a := target.U32(mustAddr(b, ip))
					p, _ := strconv.Atoi(port)
					if (st == "open") != responder.Open(a, uint16(p)) {
						b.Fatalf("%s reported %s against the ground truth", l, st)
					}
				}
				secs := field(b, errb.String(), "seconds")
				replies := float64(strings.Count(out.String(), "\n"))
				cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				b.ReportMetric(replies/(secs-1), "replies/s")
				b.ReportMetric(float64(probes-int(replies)), "lost")
				b.ReportMetric(float64(wantOpen-open), "lost-open")
				b.ReportMetric(cpu.Seconds()/(replies/1e6), "cpu-s/M-replies")
				// where a loss happened: replies the responder could not
				// transmit, events the ring buffer or socket dropped
				b.ReportMetric(sumStat(string(stats), "xdp_tx_errors"), "responder-tx-errors")
				b.ReportMetric(field(b, errb.String(), "dropped_events"), "receiver-drops")
			}
		})
	}
}

func mustAddr(b *testing.B, s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// sumStat adds every ethtool -S counter whose name ends in name.
func sumStat(stats, name string) float64 {
	var n float64
	for l := range strings.SplitSeq(stats, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && strings.HasSuffix(k, name) {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			n += f
		}
	}
	return n
}

func field(b *testing.B, log, name string) float64 {
	m := regexp.MustCompile(name+`=([0-9.e+-]+)`).FindAllStringSubmatch(log, -1)
	if m == nil {
		b.Fatalf("no %s in %s", name, log)
	}
	v, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
	return v
}

// TestBenchHarness runs `reach bench` in its smallest configuration (one
// run of each mode, reach and every installed peer) and checks the JSON it
// writes: reach finds every open pair of the ground truth at 100 kpps with
// no false positive, holds the idle rate, and the sink counted its probes.
func TestBenchHarness(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	t.Setenv("REACH_RUN_MAIN", "1") // the harness runs this test binary as reach
	js := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr strings.Builder
	code := run([]string{"reach", "bench", "--mode", "sink,recall,idle", "--runs", "1", "--rates", "100000",
		"--threads", "1", "--window", "1s", "--idle-time", "2s", "--json", js}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("reach bench exited %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("\n%s", stdout.String())
	var rep bench.Report
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	tools := append([]string{bench.Reach}, bench.Installed()...)
	if want := 3 * len(tools); len(rep.Runs) != want {
		t.Fatalf("%d runs, want %d (3 modes × %v)", len(rep.Runs), want, tools)
	}
	if rep.Machine.Cores < 1 || rep.Machine.Kernel == "" || rep.Versions[bench.Reach] == "" {
		t.Errorf("machine or versions missing: %+v %v", rep.Machine, rep.Versions)
	}
	for _, r := range rep.Runs {
		if r.Error != "" {
			t.Errorf("%s %s: %s", r.Mode, r.Tool, r.Error)
			continue
		}
		if r.Tool != bench.Reach {
			continue
		}
		switch r.Mode {
		case bench.ModeSink:
			if r.RateAchieved < 50_000 || r.CPUPerM <= 0 {
				t.Errorf("sink: %.0f pps, %.2f CPU-s/M; want ≥ 50k pps and some CPU", r.RateAchieved, r.CPUPerM)
			}
		case bench.ModeRecall:
			if r.Truth != 51_067 || r.Found != r.Truth || r.FalsePositives != 0 || r.Duplicates != 0 {
				t.Errorf("recall at 100 kpps: found %d of %d, %d false positives, %d duplicates; want all, 0, 0", r.Found, r.Truth, r.FalsePositives, r.Duplicates)
			}
		case bench.ModeIdle:
			if r.RateAchieved < 9_800 || r.RateAchieved > 10_200 { // the throttle's promise: ±2 %
				t.Errorf("idle: %.0f pps, want 10k ± 2%%", r.RateAchieved)
			}
		}
	}
	if !strings.Contains(stdout.String(), "rate achieved") {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
}

// BenchmarkGrabNginx grabs 5,000 times from the simulated network's nginx
// (198.19.1.1:80) with reach grab's default pool, with the per-address cap
// raised to the worker count, and over HTTPS (443), and reports grabs per
// second. Every grab must identify nginx.
func BenchmarkGrabNginx(b *testing.B) {
	if err := testnet.Available(); err != nil {
		b.Skipf("simulated network unavailable: %v", err)
	}
	const n = 5000
	for _, tc := range []struct {
		name   string
		target string
		args   []string
	}{
		{"default", "198.19.1.1:80", nil},
		{"per-host-256", "198.19.1.1:80", []string{"--grab-per-host", "256"}},
		{"https-default", "198.19.1.1:443", nil}, // TLS handshake and certificate too
	} {
		// a reach output with the same open pair n times (a list would be
		// grabbed once per pair)
		list := filepath.Join(b.TempDir(), "targets.jsonl")
		w, err := export.Create(list, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		ap := netip.MustParseAddrPort(tc.target)
		row := export.Row{Time: time.Now(), Addr: target.U32(ap.Addr()), Port: ap.Port(), Status: export.StatusOpen}
		for range n {
			w.Write(&row)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				nw, err := testnet.New(ctx, testnet.Options{AnyIP: true, GRO: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := nw.StartServers(ctx); err != nil {
					nw.Close()
					b.Fatal(err)
				}
				self, _ := os.Executable()
				args := append(append([]string{"grab"}, tc.args...), list)
				cmd := nw.Command(ctx, nw.Scan, self, args...)
				cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				start := time.Now()
				err = cmd.Run()
				el := time.Since(start)
				nw.Close()
				cancel()
				if err != nil {
					b.Fatalf("%v\n%s", err, errb.String())
				}
				if got := strings.Count(out.String(), ",http,nginx,"); got != n {
					b.Fatalf("%d of %d grabs identified nginx\n%s", got, n, errb.String())
				}
				b.ReportMetric(n/el.Seconds(), "grabs/s")
				cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				b.ReportMetric(cpu.Seconds()/n*1e6, "cpu-µs/grab")
			}
		})
	}
}
