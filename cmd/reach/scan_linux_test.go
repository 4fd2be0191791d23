package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// TestMain lets the test binary act as the reach binary inside the
// namespaces a test creates (REACH_RUN_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("REACH_RUN_MAIN") == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	if ports := os.Getenv("REACH_TEST_LISTEN"); ports != "" {
		os.Exit(listen(ports))
	}
	if port := os.Getenv("REACH_TEST_BANNER"); port != "" {
		os.Exit(bannerServer(port))
	}
	os.Exit(m.Run())
}

// reachIn runs reach with args inside namespace ns of nw.
func reachIn(ctx context.Context, t *testing.T, nw *testnet.Network, ns string, args ...string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := nw.Command(ctx, ns, self, args...)
	cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// capture runs tcpdump on the net side of nw until stop is called, and
// returns the pcap path and the kernel drop count.
func startCapture(ctx context.Context, t *testing.T, nw *testnet.Network, filter string) (stop func() (string, int)) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (make test installs it)")
	}
	path := filepath.Join(t.TempDir(), "far.pcap")
	cmd := nw.Command(ctx, nw.Net, "tcpdump", "-i", nw.NetIf, "-w", path, "-U", "--immediate-mode", "-B", "65536", "-s", "128", "-Q", "in", "-nn", filter)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); rest <- string(b) }()
	return func() (string, int) {
		time.Sleep(300 * time.Millisecond) // let the last frames reach the capture
		cmd.Process.Signal(syscall.SIGINT)
		text := <-rest
		cmd.Wait()
		m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("tcpdump summary missing: %s", text)
		}
		drops, _ := strconv.Atoi(m[1])
		return path, drops
	}
}

// TestScanSendsEveryPairOnce sends a /16 × 3 ports at a fixed rate from the
// scanner namespace, with each send method, and checks the far side's
// capture: every pair exactly once, valid checksums and cookies, nothing
// else, and never faster than the rate asked.
func TestScanSendsEveryPairOnce(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	for _, tt := range []struct {
		method, targets string
		rate            float64
		n               int
	}{
		{"txring", "198.19.0.0/16", 50_000, 65536 * 3},
		{"sendmmsg", "198.19.16.0/20", 25_000, 4096 * 3},
	} {
		t.Run(tt.method, func(t *testing.T) {
			ctx, nw := simnet(t, testnet.Options{}, 2*time.Minute)
			stop := startCapture(ctx, t, nw, "ip")
			out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "42", "-p", "22,80,443",
				"--rate", fmt.Sprint(tt.rate), "--send-method", tt.method, "--quiet", "--cooldown", "0s", tt.targets)
			if err != nil {
				t.Fatalf("reach scan: %v\n%s", err, out)
			}
			path, drops := stop()
			if drops != 0 {
				t.Fatalf("capture dropped %d frames; cannot judge", drops)
			}
			checkCapture(t, path, tt.n, tt.rate)
		})
	}
}

// TestScanOnLinkTargets mixes routed targets with targets on the scanner's
// own subnet: the on-link host that answers ARP is probed at its own MAC,
// the silent ones are skipped with a warning, the routed ones go to the
// gateway.
func TestScanOnLinkTargets(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{}, time.Minute)
	stop := startCapture(ctx, t, nw, "ip")
	out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "42", "-p", "22,80,443",
		"--rate", "1000", "--quiet", "--cooldown", "0s", "198.18.0.250-198.18.0.254", "198.19.0.0/30")
	if err != nil {
		t.Fatalf("reach scan: %v\n%s", err, out)
	}
	if !strings.Contains(out, "on-link targets did not answer ARP; they are skipped\" count=4") {
		t.Fatalf("no warning about the 4 silent on-link targets:\n%s", out)
	}
	path, _ := stop()
	checkCapture(t, path, 5*3, 1000)
}

// TestScanRefusesEphemeralPorts: scan source ports inside the kernel's
// ephemeral range on an address the kernel owns are refused before anything
// is sent.
func TestScanRefusesEphemeralPorts(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{}, time.Minute)
	stop := startCapture(ctx, t, nw, "ip")
	out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "-p", "80", "--source-port", "40000-40100", "198.19.0.0/24")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(out, "ip_local_port_range 32768-60999 on 198.18.0.1") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	path, _ := stop()
	checkCapture(t, path, 0, 1)
}

// listen is the far side's server for tests: it listens on every address
// (the net namespace owns all of 198.19.0.0/16 through AnyIP) on the given
// ports, says "ready", and serves until killed without accepting, so only
// the kernel's handshake replies are seen.
func listen(ports string) int {
	var ls []net.Listener
	for p := range strings.SplitSeq(ports, ",") {
		l, err := net.Listen("tcp4", "0.0.0.0:"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ls = append(ls, l)
	}
	fmt.Println("ready")
	select {}
}

// TestScanReportsListeningPairs scans a /16 × 3 ports against the far
// namespace's kernel (with the default 8 s cooldown, so a SYN-ACK the far
// side retransmits after 1, 3 or 7 s still meets the XDP program), which listens on 22 and 80 everywhere and answers 443
// with RST, once with each receiver: the output is exactly the listening
// pairs; with XDP the scanning namespace's kernel sends no RST at all; and
// the far side holds no half-open connection afterwards.
func TestScanReportsListeningPairs(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	for _, receiver := range []string{"xdp", "afpacket"} {
		t.Run(receiver, func(t *testing.T) {
			// XDP_TX needs the far veth to run NAPI (GRO); without XDP the
			// kernel's replies reach the scanner through the backlog queue,
			// which a NAPI ring of 256 frames would overflow in bursts
			ctx, nw := simnet(t, testnet.Options{AnyIP: true, GRO: receiver == "xdp"}, 2*time.Minute)
			if receiver == "xdp" {
				// a veth delivers XDP_TX only to a peer running XDP (else
				// reach leaves the RSTs to the kernel)
				if err := nw.AttachNetPassthrough(ctx, responder.Object); err != nil {
					t.Fatal(err)
				}
			}
			startListener(ctx, t, nw, "22,80")
			self, _ := os.Executable()
			for _, c := range [][]string{{"sysctl", "-qw", "net.core.somaxconn=65535"}, {"sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=65535"}} {
				nw.Command(ctx, nw.Net, c[0], c[1:]...).Run()
			}
			self2 := nw.Command(ctx, nw.Scan, self, "scan", "--no-default-blocklist", "--seed", "6", "-p", "22,80,443", "--rate", "20000",
				"--receiver", receiver, "--cooldown", "8s", "--quiet", "198.19.0.0/16")
			self2.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
			var out, errb strings.Builder
			self2.Stdout, self2.Stderr = &out, &errb
			if err := self2.Run(); err != nil {
				t.Fatalf("reach scan: %v\n%s", err, errb.String())
			}
			seen := map[string]bool{}
			for l := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
				ip, port, _ := strings.Cut(l, ",")
				if seen[l] || (port != "22" && port != "80") || !strings.HasPrefix(ip, "198.19.") {
					t.Fatalf("unexpected or repeated hit %q", l)
				}
				seen[l] = true
			}
			if len(seen) != 65536*2 {
				t.Fatalf("%d hits, want %d\n%s", len(seen), 65536*2, errb.String())
			}
			if !strings.Contains(errb.String(), "receiver="+receiver) {
				t.Fatalf("receiver mode not reported:\n%s", errb.String())
			}
			if rsts := tcpOutRsts(ctx, t, nw, nw.Scan); receiver == "xdp" && rsts != 0 {
				t.Fatalf("scanning kernel sent %d RSTs\n%s", rsts, errb.String())
			}
			// a SYN-ACK whose RST was lost is retransmitted after 1 s and 3 s
			// (and answered again); give the far side that long to settle
			n := -1
			for deadline := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				halfOpen, _ := nw.Command(ctx, nw.Net, "ss", "-Htn", "state", "syn-recv").Output()
				n = strings.Count(string(halfOpen), "\n")
			}
			if n != 0 {
				halfOpen, _ := nw.Command(ctx, nw.Net, "ss", "-tnoi", "state", "syn-recv").Output()
				t.Fatalf("%d half-open connections left on the far side:\n%s\n%s", n, halfOpen, errb.String())
			}
			t.Logf("%s: %s", receiver, lastLine(errb.String()))
		})
	}
}

// tcpOutRsts reads the Tcp OutRsts counter of namespace ns from
// /proc/net/snmp (RFC 1213 tcpOutRsts).
func tcpOutRsts(ctx context.Context, t *testing.T, nw *testnet.Network, ns string) int {
	t.Helper()
	n, err := nw.TCPCounter(ctx, ns, "OutRsts")
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// TestScanWarnsOfFailedResets: with no XDP program on the far veth, XDP_TX
// cannot deliver the RSTs; reach must say so and let the kernel answer,
// not stay silent.
func TestScanWarnsOfFailedResets(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, testnet.Options{AnyIP: true}) // GRO off
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	startListener(ctx, t, nw, "80")
	out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "-p", "80", "--rate", "5000", "--receiver", "xdp", "--cooldown", "1s", "--quiet", "198.19.0.0/26")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	hits := len(regexp.MustCompile(`(?m)^198\.19\.0\.\d+,80$`).FindAllString(out, -1))
	if hits != 64 || !strings.Contains(out, "XDP_TX cannot deliver RSTs on this interface: the kernel answers SYN-ACKs with RSTs instead") {
		t.Fatalf("no warning that XDP_TX cannot deliver:\n%s", out)
	}
	if rsts := tcpOutRsts(ctx, t, nw, nw.Scan); rsts != 64 {
		t.Fatalf("scanning kernel sent %d RSTs, want 64", rsts)
	}
}

// TestScanOutputsAgree scans against the XDP responder once per output
// format: every file holds the same rows, which match the ground truth, and
// the metadata records the seed and counters.
func TestScanOutputsAgree(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	dir := t.TempDir()
	var first []export.Row
	for _, name := range []string{"scan.parquet", "scan.csv", "scan.jsonl", "scan.arrow", "parts/"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		nw, err := testnet.New(ctx, testnet.Options{GRO: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := nw.AttachResponder(ctx, responder.Object); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			path += "/"
		}
		meta := filepath.Join(dir, name+".json")
		out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "11", "-p", "22,80,443,9999", "--rate", "20000",
			"--cooldown", "500ms", "--output-closed", "-o", path, "-m", meta, "--quiet", "198.19.2.0/24")
		nw.Close()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		rows, err := export.ReadFile(strings.TrimSuffix(path, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if want := answering(0xC6130200, 256) * 4; len(rows) != want {
			t.Fatalf("%s: %d rows, want %d", name, len(rows), want)
		}
		sort.Slice(rows, func(i, j int) bool {
			return rows[i].Addr < rows[j].Addr || rows[i].Addr == rows[j].Addr && rows[i].Port < rows[j].Port
		})
		for _, r := range rows {
			if (r.Status == export.StatusOpen) != responder.Open(r.Addr, r.Port) || r.TTL != 61 || r.Time.IsZero() {
				t.Fatalf("%s: row %+v disagrees with the ground truth", name, r)
			}
		}
		if first == nil {
			first = rows
		} else {
			for i := range rows {
				a, b := rows[i], first[i]
				if a.Addr != b.Addr || a.Port != b.Port || a.Status != b.Status || a.MSS != b.MSS || a.Window != b.Window {
					t.Fatalf("%s row %d differs from scan.parquet: %+v vs %+v", name, i, a, b)
				}
			}
		}
		mb, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(mb, &m); err != nil || m["seed"] != float64(11) || m["sent"] != float64(1024) || m["receiver"] != "xdp/driver" && m["receiver"] != "xdp/generic" {
			t.Fatalf("%s: metadata %v %s", name, err, mb)
		}
	}
}

// TestInterruptAndResume interrupts a scan with SIGINT, resumes it from its
// checkpoint, and checks that the two runs together report exactly the
// pairs one uninterrupted scan reports, none twice.
func TestInterruptAndResume(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{GRO: true}, 2*time.Minute)
	if err := nw.AttachResponder(ctx, responder.Object); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ck := filepath.Join(dir, "scan.ck")
	args := []string{"scan", "--no-default-blocklist", "--seed", "21", "-p", "22,80,443,9999", "--rate", "2000", "--cooldown", "500ms",
		"--output-closed", "--quiet", "--checkpoint", ck, "--checkpoint-interval", "100ms"}
	self, _ := os.Executable()
	first := nw.Command(ctx, nw.Scan, self, append(args, "-o", filepath.Join(dir, "a.csv"), "198.19.0.0/22")...)
	first.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	var errA strings.Builder
	first.Stderr = &errA
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)  // about half of the 2 s of sending
	first.Process.Signal(syscall.SIGINT) // ip netns exec execs reach: this is reach
	if err := first.Wait(); err == nil || !strings.Contains(errA.String(), "--resume "+ck) {
		t.Fatalf("interrupted scan: %v\n%s", err, errA.String())
	}
	out, err := reachIn(ctx, t, nw, nw.Scan, append(args[:len(args)-4], "--resume", ck, "-o", filepath.Join(dir, "b.csv"), "198.19.0.0/22")...)
	if err != nil {
		t.Fatalf("resumed scan: %v\n%s", err, out)
	}
	a, err := export.ReadFile(filepath.Join(dir, "a.csv"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := export.ReadFile(filepath.Join(dir, "b.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || len(b) == 0 {
		t.Fatalf("interrupted run found %d, resumed %d: the interruption came too early or too late", len(a), len(b))
	}
	seen := map[[2]uint32]bool{}
	for _, r := range append(a, b...) {
		k := [2]uint32{r.Addr, uint32(r.Port)}
		if seen[k] {
			t.Fatalf("%v reported by both runs", k)
		}
		seen[k] = true
		if (r.Status == export.StatusOpen) != responder.Open(r.Addr, r.Port) {
			t.Fatalf("row %+v disagrees with the ground truth", r)
		}
	}
	if want := answering(0xC6130000, 1024) * 4; len(seen) != want {
		t.Fatalf("together %d pairs (%d + %d), want %d", len(seen), len(a), len(b), want)
	}
	var c scan.Checkpoint
	if b, _ := os.ReadFile(ck); json.Unmarshal(b, &c) != nil || !c.Done {
		t.Fatalf("final checkpoint not marked done: %s", b)
	}
}

// responderScan runs one scan against the XDP responder in a fresh
// simulated network and returns its rows (open and closed) and log.
func responderScan(t *testing.T, extra ...string) ([]export.Row, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, testnet.Options{GRO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	if err := nw.AttachResponder(ctx, responder.Object); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(extra, "afpacket") {
		if err := nw.AttachScanPassthrough(ctx, responder.Object); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "scan.parquet")
	log, err := reachIn(ctx, t, nw, nw.Scan, append([]string{"scan", "--no-default-blocklist", "--output-closed", "--quiet", "-o", out}, extra...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	rows, err := export.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return rows, log
}

// checkGroundTruth asserts precision and recall 1.0: every pair of the scan
// answered exactly once with the responder's verdict.
func checkGroundTruth(t *testing.T, rows []export.Row, addrs uint32, base uint32, ports []uint16) {
	t.Helper()
	reports := make([]testnet.Report, len(rows))
	for i, r := range rows {
		reports[i] = testnet.Report{Addr: r.Addr, Port: r.Port, Open: r.Status == export.StatusOpen}
	}
	scope := testnet.Scope{Ranges: []target.Range{{First: base, Last: base + addrs - 1}}, Ports: ports}
	if v := testnet.Verify(testnet.Truth{}, scope, reports); !v.Exact() {
		t.Fatalf("against the ground truth: %v", v)
	}
}

// answering counts the addresses in [base, base+n) that the responder
// answers (the others are silent hosts).
func answering(base, n uint32) int {
	c := 0
	for a := base; a < base+n; a++ {
		if !responder.Silent(a) {
			c++
		}
	}
	return c
}

// TestScanRecallAt100kpps scans a /16 × 8 ports at 100 kpps against the XDP
// responder with each receiver: precision and recall are both 1.0.
func TestScanRecallAt100kpps(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ports := []uint16{22, 80, 443, 3306, 5432, 6379, 8080, 9999}
	for _, receiver := range []string{"xdp", "afpacket"} {
		t.Run(receiver, func(t *testing.T) {
			rows, log := responderScan(t, "--seed", "8", "-p", "22,80,443,3306,5432,6379,8080,9999", "--rate", "100000",
				"--receiver", receiver, "--cooldown", "1s", "198.19.0.0/16")
			checkGroundTruth(t, rows, 65536, 0xC6130000, ports)
			t.Logf("%s", lastLine(log))
		})
	}
}

// TestShardsPartitionTheScan: two shards of one seed report, together,
// exactly the unsharded scan's pairs, and no pair twice.
func TestShardsPartitionTheScan(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ports := []uint16{22, 80, 443, 9999}
	var all []export.Row
	for s := range 2 {
		rows, _ := responderScan(t, "--seed", "4", "--shards", "2", "--shard", strconv.Itoa(s), "-T", "1", "-p", "22,80,443,9999",
			"--rate", "20000", "--cooldown", "500ms", "198.19.32.0/20")
		if len(rows) == 0 || len(rows) == 4096*4 {
			t.Fatalf("shard %d reported %d pairs", s, len(rows))
		}
		all = append(all, rows...)
	}
	checkGroundTruth(t, all, 4096, 0xC6132000, ports)
}

// TestResumeAfterKill kills a scan with SIGKILL (no chance to write
// anything), resumes it from its last periodic checkpoint, and checks on the
// far side's capture that no pair was skipped: every pair is probed at
// least once, and only the last interval's pairs twice.
func TestResumeAfterKill(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{}, 2*time.Minute)
	stop := startCapture(ctx, t, nw, "ip")
	ck := filepath.Join(t.TempDir(), "scan.ck")
	args := []string{"scan", "--no-default-blocklist", "--seed", "31", "-p", "22,80", "--rate", "4000", "--cooldown", "0s", "--quiet",
		"--receiver", "afpacket", "--checkpoint", ck, "--checkpoint-interval", "100ms"}
	self, _ := os.Executable()
	first := nw.Command(ctx, nw.Scan, self, append(args, "198.19.0.0/20")...)
	first.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1 * time.Second)
	first.Process.Kill()
	first.Wait()
	out, err := reachIn(ctx, t, nw, nw.Scan, append(args[:len(args)-4], "--resume", ck, "198.19.0.0/20")...)
	if err != nil {
		t.Fatalf("resumed scan: %v\n%s", err, out)
	}
	path, drops := stop()
	if drops != 0 {
		t.Fatalf("capture dropped %d frames; cannot judge", drops)
	}
	f, _ := os.Open(path)
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	count := map[[2]uint32]int{}
	for {
		data, _, err := rd.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip != nil && tcp != nil && tcp.SYN {
			count[[2]uint32{u32(ip.DstIP), uint32(tcp.DstPort)}]++
		}
	}
	twice := 0
	for _, n := range count {
		if n > 1 {
			twice++
		}
	}
	if len(count) != 4096*2 {
		t.Fatalf("%d of %d pairs probed across the killed and the resumed run", len(count), 4096*2)
	}
	// at 4000 pps a 100 ms checkpoint interval (plus a batch) repeats at most
	// a few hundred probes
	if twice > 600 {
		t.Fatalf("%d pairs probed twice: the checkpoint lagged", twice)
	}
	t.Logf("%d pairs probed twice after the kill", twice)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// simnet builds a simulated network for one test (skipping when it cannot
// be built here) and removes it when the test ends.
func simnet(t *testing.T, opt testnet.Options, timeout time.Duration) (context.Context, *testnet.Network) {
	t.Helper()
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	nw, err := testnet.New(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	return ctx, nw
}

// startListener runs the test binary's listener (see listen) on ports in
// the net namespace and waits until it listens.
func startListener(ctx context.Context, t *testing.T, nw *testnet.Network, ports string) {
	t.Helper()
	self, _ := os.Executable()
	srv := nw.Command(ctx, nw.Net, self)
	srv.Env = append(os.Environ(), "REACH_TEST_LISTEN="+ports)
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "ready\n" {
		t.Fatalf("listener: %q", l)
	}
}

func checkCapture(t *testing.T, path string, want int, rate float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cookie, _ := packet.NewCookie(42, packet.PortWindow{First: 61000, Count: 4536}, 1)
	seen := make(map[[2]uint32]bool, want)
	var first, last time.Time
	for {
		data, ci, err := rd.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = ci.Timestamp
		}
		last = ci.Timestamp
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil || !tcp.SYN || tcp.ACK || tcp.RST {
			t.Fatalf("unexpected frame on the wire: %v", pkt)
		}
		if !ip.SrcIP.Equal(testnet.ScanIP.AsSlice()) || ip.DstIP[0] != 198 || ip.DstIP[1]&0xfe != 18 {
			t.Fatalf("frame %v → %v outside the simulated network", ip.SrcIP, ip.DstIP)
		}
		ipHdr := data[packet.EthLen : packet.EthLen+packet.IPv4Len]
		seg := data[packet.EthLen+packet.IPv4Len:]
		src, dst := u32(ip.SrcIP), u32(ip.DstIP)
		if packet.Checksum(ipHdr, 0) != 0 || packet.Checksum(seg, packet.PseudoSum(src, dst, len(seg))) != 0 {
			t.Fatalf("bad checksum: %v", pkt)
		}
		back := packet.Reply{Src: dst, Dst: src, Sport: uint16(tcp.DstPort), Dport: uint16(tcp.SrcPort), Flags: packet.FlagSYN | packet.FlagACK, Ack: tcp.Seq + 1}
		if v := cookie.Check(&back); v != packet.SynAck {
			t.Fatalf("cookie check %v for %v", v, pkt)
		}
		k := [2]uint32{dst, uint32(tcp.DstPort)}
		if seen[k] {
			t.Fatalf("%v:%d probed twice", ip.DstIP, tcp.DstPort)
		}
		seen[k] = true
	}
	if len(seen) != want {
		t.Fatalf("%d distinct pairs on the wire, want %d", len(seen), want)
	}
	if want < 2 {
		return
	}
	achieved := float64(want-1) / last.Sub(first).Seconds()
	t.Logf("%d probes, achieved %.0f pps (asked %.0f)", want, achieved, rate)
	if achieved > rate*1.02 {
		t.Fatalf("sent at %.0f pps, faster than the %.0f asked", achieved, rate)
	}
}

func u32(ip []byte) uint32 {
	ip = ip[len(ip)-4:]
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
