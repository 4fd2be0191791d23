package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/export"
)

// TestDemoInterrupted stops `reach demo` with SIGINT while its first scan
// is writing scan.parquet.RUN.tmp: the demo must say so (exit 1), leave no
// NAME.tmp behind and remove its namespaces.
func TestDemoInterrupted(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// 65,536 addresses × 11 ports at 2,000 pps: six minutes, far longer
	// than the test waits
	cmd := exec.Command(self, "demo", "--rate", "2000", "--out", dir)
	cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// the line announcing the first scan names the scanner namespace
	nsRe := regexp.MustCompile(`^in namespace (\S+): reach scan `)
	var ns string
	lines := bufio.NewScanner(stdout)
	for ns == "" && lines.Scan() {
		if m := nsRe.FindStringSubmatch(lines.Text()); m != nil {
			ns = m[1]
		}
	}
	if ns == "" {
		t.Fatalf("no scan announced; stderr:\n%s", errb.String())
	}
	go func() { // keep the pipe drained
		for lines.Scan() {
		}
	}()
	tmp := filepath.Join(dir, "scan.parquet.*.tmp")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m, _ := filepath.Glob(tmp); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared; stderr:\n%s", tmp, errb.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitError || !strings.Contains(errb.String(), "demo interrupted") {
		t.Fatalf("exit %v, want 1 and \"demo interrupted\"; stderr:\n%s", err, errb.String())
	}
	left, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if err != nil || len(left) != 0 {
		t.Errorf("temporary files left after SIGINT: %v %v", left, err)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(l, ns+" ") || l == ns {
			t.Errorf("namespace %s still there after SIGINT", ns)
		}
	}
}

// TestDemo runs `reach demo` (what make demo runs) from a directory other
// than the repository's, with the built-in policy: it must scan the
// simulated network, real servers included, agree with the ground truth
// everywhere, end with its verdict and the files it wrote, and print
// follow-up commands that run as printed.
func TestDemo(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	t.Setenv("REACH_RUN_MAIN", "1") // the demo re-runs this binary as reach inside the namespace
	t.Chdir(t.TempDir())
	out, errs, code := reach(t, "demo", "--targets", "198.19.0.0/22", "--rate", "50000")
	if code != 0 || !strings.Contains(out, "10505 of 10505 answering pairs answered (silent hosts stay silent); 0 disagree with the ground truth") ||
		!strings.Contains(out, "198.19.1.4:5432 open: postgresql") || !strings.Contains(out, "198.19.1.5:3306 open: mariadb") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	// the review of the real servers against the built-in demo policy
	for _, want := range []string{
		"11 open ports on 5 hosts: 7 unexpected, 1 ownerless, 3 expected",
		"198.19.1.3:6379 success: Redis",
		"answers without credentials",
		"critical  unexpected  198.19.1.3:7000",
		"critical  ownerless   198.19.1.4:5432",
		"high      unexpected  198.19.1.2:2200",
		"\nverdict: the scan matches the ground truth (10505 of 10505 answering pairs, none wrong); the review finds 8 exposures to act on (4 critical, 1 high) among 11 open ports on 5 hosts.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	rows, err := export.ReadFile(filepath.Join("demo-out", "review.csv"))
	if err != nil || len(rows) != 11 {
		t.Fatalf("review.csv: %d rows, %v; want 11", len(rows), err)
	}
	// the files listed are the files in demo-out, and no others
	_, list, ok := strings.Cut(out, "\nfiles written:\n")
	list, next, ok2 := strings.Cut(list, "\n\nnext, in a shell in this directory:\n")
	if !ok || !ok2 {
		t.Fatalf("no file list or follow-ups:\n%s", out)
	}
	var listed []string
	for l := range strings.SplitSeq(list, "\n") {
		listed = append(listed, strings.Fields(l)[0])
	}
	onDisk, err := filepath.Glob(filepath.Join("demo-out", "*"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(listed)
	if want := []string{"demo-out/metadata.json", "demo-out/policy.yaml", "demo-out/review.csv", "demo-out/scan.parquet", "demo-out/services.parquet"}; !slices.Equal(listed, want) || !slices.Equal(onDisk, want) {
		t.Errorf("files listed %v, on disk %v; want %v", listed, onDisk, want)
	}
	// each follow-up runs as printed (the test binary is reach here)
	wants := []string{"11 open ports on 5 hosts: 7 unexpected, 1 ownerless, 3 expected", "exit 3\n", "198.19.1."}
	cmds := strings.Split(strings.TrimSpace(next), "\n")
	if len(cmds) < len(wants) {
		t.Fatalf("%d follow-ups, want at least %d:\n%s", len(cmds), len(wants), next)
	}
	for i, want := range wants {
		got, err := exec.Command("sh", "-c", cmds[i]).CombinedOutput()
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("follow-up %q: %v, output lacks %q:\n%s", cmds[i], err, want, got)
		}
	}
}
