package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/results"
)

// reachCmd is the reach command (this test binary) in namespace ns.
func reachCmd(t *testing.T, nw *testnet.Network, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := nw.Command(t.Context(), nw.Scan, self, args...)
	cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	return cmd
}

// waitForCheckpoint waits until the checkpoint at path records committed
// rows (a part with at least one row), so a kill comes mid-scan.
func waitForCheckpoint(t *testing.T, path string, exited <-chan error) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("scan ended before its first committed checkpoint: %v", err)
		case <-deadline:
			t.Fatal("no checkpoint with committed rows")
		case <-time.After(20 * time.Millisecond):
		}
		ck, err := scan.LoadCheckpoint(path)
		if err != nil {
			continue
		}
		var parts []results.Part
		if json.Unmarshal(ck.Outputs, &parts) == nil && len(parts) > 0 && parts[0].Rows > 0 {
			return
		}
	}
}

// TestKillAndResumeLosesNoRow kills a scan with SIGKILL once its
// checkpoint has committed rows, resumes it with the same -o, and checks
// the output against the responder's ground truth: every answering pair
// exactly once, in every format and for a dataset directory.
func TestKillAndResumeLosesNoRow(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	for _, name := range []string{"scan.csv", "scan.jsonl", "scan.parquet", "scan.arrow", "dataset/"} {
		t.Run(name, func(t *testing.T) {
			ctx, nw := simnet(t, testnet.Options{GRO: true}, 2*time.Minute)
			if err := nw.AttachResponder(ctx, responder.Object); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			out, ck := filepath.Join(dir, name), filepath.Join(dir, "scan.ck")
			if strings.HasSuffix(name, "/") {
				out += "/"
			}
			args := []string{"scan", "--no-default-blocklist", "--seed", "77", "-p", "22,80,443,9999", "--rate", "3000",
				"--cooldown", "300ms", "--output-closed", "--quiet", "--checkpoint-interval", "100ms", "-o", out}
			first := reachCmd(t, nw, append(args, "--checkpoint", ck, "198.19.0.0/22")...)
			var errA bytes.Buffer
			first.Stderr = &errA
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- first.Wait() }()
			waitForCheckpoint(t, ck, exited)
			time.Sleep(150 * time.Millisecond) // rows after the checkpoint die with the process
			first.Process.Kill()
			<-exited
			if _, err := os.Stat(strings.TrimSuffix(out, "/")); !strings.HasSuffix(name, "/") && err == nil {
				t.Fatalf("a killed scan left its final file %s", out)
			}
			log, err := reachIn(ctx, t, nw, nw.Scan, append(args, "--resume", ck, "198.19.0.0/22")...)
			if err != nil {
				t.Fatalf("resumed scan: %v\n%s", err, log)
			}
			rows, err := export.ReadFile(strings.TrimSuffix(out, "/"))
			if err != nil {
				t.Fatal(err)
			}
			checkGroundTruth(t, rows, 1024, 0xC6130000, []uint16{22, 80, 443, 9999})
			if !strings.Contains(log, "pairs committed by the earlier runs are not written again") {
				t.Fatalf("the resumed run did not load the killed run's parts:\n%s", log)
			}
			var c scan.Checkpoint
			if b, _ := os.ReadFile(ck); json.Unmarshal(b, &c) != nil || !c.Done {
				t.Fatalf("final checkpoint not marked done: %s", b)
			}
		})
	}
}

// TestDiskFullStopsTheScan fills a small tmpfs with the output in every
// format: the scan stops sending long before its end, exits non-zero,
// says why, and leaves no file under the final name.
func TestDiskFullStopsTheScan(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	for _, f := range []export.Format{export.CSV, export.NDJSON, export.Parquet, export.Arrow} {
		t.Run(string(f), func(t *testing.T) {
			ctx, nw := simnet(t, testnet.Options{GRO: true}, 2*time.Minute)
			if err := nw.AttachResponder(ctx, responder.Object); err != nil {
				t.Fatal(err)
			}
			full := t.TempDir()
			if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=32k"); err != nil {
				t.Skipf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() { syscall.Unmount(full, syscall.MNT_DETACH) })
			out := filepath.Join(full, "scan"+f.Extension())
			meta := filepath.Join(t.TempDir(), "meta.json")
			// 4096 × 4 pairs at 4000 pps: four seconds of sending
			log, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "5", "-p", "22,80,443,9999", "--rate", "4000",
				"--cooldown", "200ms", "--output-closed", "--quiet", "--checkpoint", filepath.Join(t.TempDir(), "ck"), "--checkpoint-interval", "100ms",
				"-o", out, "-m", meta, "198.19.0.0/20")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(log, "no space left on device") {
				t.Fatalf("exit %v, want 1 and the reason:\n%s", err, log)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed output got its final name: %v", err)
			}
			var m struct{ Sent uint64 }
			if b, err := os.ReadFile(meta); err != nil || json.Unmarshal(b, &m) != nil {
				t.Fatalf("metadata: %v", err)
			}
			if m.Sent == 0 || m.Sent > 16384/2 {
				t.Fatalf("sent %d of 16384 probes after the disk filled; want it stopped early", m.Sent)
			}
			t.Logf("sent %d of 16384 before stopping", m.Sent)
		})
	}
}

// TestFailedBeforeSendingWritesNothing: a scan whose route lookup fails
// leaves an earlier output byte for byte, and adds no file.
func TestFailedBeforeSendingWritesNothing(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{}, time.Minute)
	dir := t.TempDir()
	for _, name := range []string{"scan.parquet", "scan.csv"} {
		out := filepath.Join(dir, name)
		if err := os.WriteFile(out, []byte("earlier scan\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// 198.18.200.0/24 has no route in the scanner's namespace
		log, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "-p", "80", "--quiet", "-o", out,
			"--checkpoint", filepath.Join(dir, "ck"), "198.18.200.0/24")
		if err == nil {
			t.Fatalf("scan without a route succeeded:\n%s", log)
		}
		if b, _ := os.ReadFile(out); string(b) != "earlier scan\n" {
			t.Fatalf("%s was changed to %q\n%s", name, b, log)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v; want only the two earlier files", names)
	}
}

// TestStdoutStreams: -o - is NDJSON on stdout, and rows arrive while the
// scan still runs; -o onto a symlink to /dev/stdout writes through it and
// leaves the symlink a symlink.
func TestStdoutStreams(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{GRO: true}, time.Minute)
	if err := nw.AttachResponder(ctx, responder.Object); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.Symlink("/dev/stdout", link); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"-", link} {
		cmd := reachCmd(t, nw, "scan", "--no-default-blocklist", "--seed", "3", "-p", "80", "--rate", "200", "--cooldown", "3s", "--quiet",
			"-o", out, "198.19.0.0/28")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() {
			t.Fatalf("%s: no row", out)
		}
		select {
		case <-exited:
			t.Fatalf("%s: the first row came only when the scan had ended", out)
		default:
		}
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row["status"] != "open" {
			t.Fatalf("%s: first line %q: %v", out, sc.Text(), err)
		}
		if _, ok := row["service"]; ok {
			t.Fatalf("%s: null keys written: %s", out, sc.Text())
		}
		n := 1
		for sc.Scan() {
			n++
		}
		<-exited
		if cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("%s: exit %d", out, cmd.ProcessState.ExitCode())
		}
		if want := countOpen(0xC6130000, 16, 80); n != want {
			t.Fatalf("%s: %d rows, want %d", out, n, want)
		}
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink became %v, %v", st.Mode(), err)
	}
}

// countOpen is how many of n addresses from base answer port with a SYN-ACK.
func countOpen(base, n uint32, port uint16) int {
	c := 0
	for a := base; a < base+n; a++ {
		if responder.Open(a, port) {
			c++
		}
	}
	return c
}

// TestInterruptedGrabKeepsUntriedUnknown interrupts reach grab while its
// first grabs wait on servers that never speak: it says it stops new
// grabs, the running ones finish, it exits 1, and the rows of targets never
// grabbed carry no grab status (not timeout, not filtered).
func TestInterruptedGrabKeepsUntriedUnknown(t *testing.T) {
	dir, list, out, nw := silentServers(t, "198.19.3.%d", 100)
	cmd := reachCmd(t, nw, "grab", "--grab-workers", "4", "--grab-timeout", "3s", "-o", out, list)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() { // the pool has started: the handler is installed
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "grabbing") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(log.String(), "no new grabs") {
		t.Fatalf("exit %v, want 1 after saying it stops new grabs:\n%s", err, log.String())
	}
	rows, err := export.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, r := range rows {
		switch {
		case r.GrabStatus == "" && r.Status == export.StatusUnknown:
		case r.GrabStatus != "" && r.Status == export.StatusOpen:
			tried++
		default:
			t.Fatalf("row %s:%d status %q grab %q: an untried target must stay unknown", target.Addr(r.Addr), r.Port, r.Status, r.GrabStatus)
		}
	}
	if len(rows) != 100 || tried == 0 || tried > 8 {
		t.Fatalf("%d rows, %d grabbed; want 100 rows and only the first few grabbed\n%s", len(rows), tried, log.String())
	}
	// an earlier complete grab of the same targets: the interrupted one
	// shows no port gone and none changed
	before := filepath.Join(dir, "before.jsonl")
	w, err := export.Create(before, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		r.Status, r.GrabStatus = export.StatusOpen, "no-banner"
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	diff, errs, code := reach(t, "diff", before, out)
	if code != 0 || !strings.HasPrefix(diff, "0 changes: 0 new, 0 changed, 0 gone") {
		t.Fatalf("diff of a complete grab against the interrupted one: exit %d\n%s\n%s", code, diff, errs)
	}
}

// TestGrabEscapesServerStrings: a server whose banner holds escape
// sequences cannot reach the terminal through reach grab's lines.
func TestGrabEscapesServerStrings(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{AnyIP: true}, time.Minute)
	self, _ := os.Executable()
	srv := nw.Command(ctx, nw.Net, self)
	srv.Env = append(os.Environ(), "REACH_TEST_BANNER=2323")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "ready\n" {
		t.Fatalf("banner server: %q", l)
	}
	cmd := reachCmd(t, nw, "grab", "--grab-timeout", "3s", "-")
	cmd.Stdin = strings.NewReader("198.19.5.1,2323\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grab: %v\n%s", err, out)
	}
	if bytes.ContainsAny(bytes.TrimSuffix(out, []byte("\n")), "\x1b\a\r\x9b") || !strings.HasPrefix(string(out), "198.19.5.1,2323,") {
		t.Fatalf("grab line %q carries control characters", out)
	}
	if !strings.Contains(string(out), `\x1b[2J`) {
		t.Fatalf("grab line %q: want the escape shown, quoted", out)
	}
}

// bannerServer is a hostile server for tests: on port it greets every
// connection with an SSH identification full of terminal escapes.
func bannerServer(port string) int {
	l, err := net.Listen("tcp4", "0.0.0.0:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		c.Write([]byte("SSH-2.0-Open\x1b[2J\x1b]0;owned\aSSH_9.9\r\n"))
		c.Close()
	}
}

// TestGrabOutOfDescriptors runs reach grab under `ulimit -n 64` against
// more silent servers than it has descriptors for: the grabs that could not
// get one say local-error (their rows' status stays unknown), none is
// recorded as a fact about its target, progress is shown, and the run warns
// and exits 1.
func TestGrabOutOfDescriptors(t *testing.T) {
	_, list, out, nw := silentServers(t, "198.19.4.%d", 150)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := nw.Command(t.Context(), nw.Scan, "sh", "-c", `ulimit -n 64 && exec "$0" "$@"`, self, "grab", "--grab-workers", "150",
		"--grab-timeout", "2s", "-o", out, list)
	cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	log, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(log), "failed on this host") {
		t.Fatalf("exit %v, want 1 and the warning:\n%s", err, log)
	}
	rows, err := export.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	local := 0
	for _, r := range rows {
		switch {
		case r.GrabStatus == "local-error" && r.Status == export.StatusUnknown:
			local++
		case r.Status == export.StatusOpen && (r.GrabStatus == "timeout" || r.GrabStatus == "no-banner"):
		default:
			t.Fatalf("row %s:%d status %q grab %q %q: a local failure recorded as a fact about the target",
				target.Addr(r.Addr), r.Port, r.Status, r.GrabStatus, r.GrabError)
		}
	}
	if len(rows) != 150 || local == 0 || local == 150 {
		t.Fatalf("%d rows, %d local errors; want 150 rows, some but not all local", len(rows), local)
	}
	if !strings.Contains(string(log), "grabbed ") {
		t.Errorf("no progress line in two seconds of grabbing:\n%s", log)
	}
	t.Logf("%d of 150 grabs had no descriptor", local)
}

// TestSecondScanOnBusyInterface: while one scan's XDP matcher is attached,
// a second scan on the same interface refuses before its first probe with
// exit 2, whatever its receiver.
func TestSecondScanOnBusyInterface(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{}, time.Minute)
	first := reachCmd(t, nw, "scan", "--no-default-blocklist", "-p", "80", "--rate", "10", "--receiver", "xdp", "-o", filepath.Join(t.TempDir(), "a.csv"), "198.19.0.0/24")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "scan starting") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	for _, receiver := range []string{"auto", "xdp", "afpacket"} {
		out := filepath.Join(t.TempDir(), "b.csv")
		log, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "-p", "80", "--receiver", receiver, "-o", out, "198.19.1.0/24")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(log, "interface busy") {
			t.Fatalf("%s: exit %v, want 2 and why:\n%s", receiver, err, log)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the refused scan wrote %s", receiver, out)
		}
	}
}

// silentServers starts servers that accept and never speak on port 2222
// of every address, and writes a list of n of them (addresses from the
// format pattern, 1-based) for reach grab: the scratch directory, the
// list, an output path there, and the network.
func silentServers(t *testing.T, pattern string, n int) (dir, list, out string, nw *testnet.Network) {
	t.Helper()
	ctx, nw := simnet(t, testnet.Options{AnyIP: true}, time.Minute)
	startListener(ctx, t, nw, "2222")
	dir = t.TempDir()
	list, out = filepath.Join(dir, "targets.txt"), filepath.Join(dir, "grab.jsonl")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, pattern+",2222\n", i+1)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, list, out, nw
}

// TestSynProxyIsMarked puts a transparent proxy in front of one address of
// the far side (nftables redirects every port of 198.19.7.7 to one
// listener, so its kernel completes the handshake on all of them, as a SYN
// proxy does): the scan warns about that address, keeps its rows, and the
// review lists it once instead of 200 open ports, while the real listener
// on 198.19.7.8 stays an ordinary finding.
func TestSynProxyIsMarked(t *testing.T) {
	ctx, nw := simnet(t, testnet.Options{AnyIP: true, GRO: true}, time.Minute)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (make test installs nftables)")
	}
	startListener(ctx, t, nw, "2222")
	for _, rule := range [][]string{
		{"add", "table", "ip", "reachproxy"},
		{"add", "chain", "ip", "reachproxy", "pre", "{ type nat hook prerouting priority -100 ; }"},
		{"add", "rule", "ip", "reachproxy", "pre", "ip", "daddr", "198.19.7.7", "tcp", "dport", "1-65535", "redirect", "to", ":2222"},
	} {
		if out, err := nw.Command(ctx, nw.Net, "nft", rule...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v\n%s", rule, err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "scan.jsonl")
	log, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "9", "-p", "1-200,2222", "--rate", "5000",
		"--cooldown", "1s", "--quiet", "-o", out, "198.19.7.7-198.19.7.8")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if !strings.Contains(log, "SYN proxy") || !strings.Contains(log, "first=198.19.7.7") || !strings.Contains(log, "addresses=1 ports=201") {
		t.Fatalf("no warning naming the proxy:\n%s", log)
	}
	rows, err := export.ReadFile(out)
	if err != nil || len(rows) != 202 {
		t.Fatalf("%d rows, %v; want the proxy's 201 and the listener's 1", len(rows), err)
	}
	text, errs, code := reach(t, "review", out)
	if code != 0 || !strings.Contains(text, "198.19.7.7 answers every port alike (SYN proxy or tarpit): its 201 open ports are not listed") ||
		strings.Contains(text, "198.19.7.7:") || !strings.Contains(text, "198.19.7.8:2222") || !strings.Contains(text, "\n1 open port on 1 host") {
		t.Fatalf("review (exit %d):\n%s\n%s", code, text, errs)
	}
}
