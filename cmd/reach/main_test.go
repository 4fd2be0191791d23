package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachscan/reach/export"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func reach(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"reach"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (go test -update rewrites it):\n got: %q\nwant: %q", path, got, want)
	}
}

// TestIterateGolden pins the scan order of a seed: a change here changes
// every resumed or sharded scan, so it must be deliberate.
func TestIterateGolden(t *testing.T) {
	out, errs, code := reach(t, "iterate", "--no-default-blocklist", "--seed", "7", "-p", "22,80-81", "198.18.0.0/29", "198.18.1.9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "iterate-seed7.golden", out)
	if n := strings.Count(out, "\n"); n != 27 {
		t.Fatalf("%d lines, want 9 addresses × 3 ports", n)
	}
}

func TestIterateShardsPartition(t *testing.T) {
	args := []string{"iterate", "--no-default-blocklist", "--seed", "3", "-p", "443", "-T", "2"}
	all, _, _ := reach(t, append(args, "198.18.0.0/24")...)
	seen := map[string]int{}
	for s := range 3 {
		out, errs, code := reach(t, append(args, "--shards", "3", "--shard", string(rune('0'+s)), "198.18.0.0/24")...)
		if code != 0 {
			t.Fatalf("shard %d: exit %d: %s", s, code, errs)
		}
		for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			seen[l]++
		}
	}
	if len(seen) != 256 || strings.Count(all, "\n") != 256 {
		t.Fatalf("shards cover %d pairs, whole scan %d; want 256", len(seen), strings.Count(all, "\n"))
	}
	for l, n := range seen {
		if n != 1 || !strings.Contains(all, l+"\n") {
			t.Fatalf("%s seen %d times", l, n)
		}
	}
}

func TestRepeatedPortsMerge(t *testing.T) {
	out, errs, code := reach(t, "iterate", "--no-default-blocklist", "--count", "-p", "80", "-p", "443,80", "198.18.0.0/30")
	if code != 0 || out != "8\n" {
		t.Fatalf("exit %d, %q, %s", code, out, errs)
	}
}

// TestScanDryRun prints every probe without privileges or a network: one
// decoded SYN per pair, with the cookie-chosen source port in the window.
func TestScanDryRun(t *testing.T) {
	out, errs, code := reach(t, "scan", "--dry-run", "--no-default-blocklist", "--seed", "9", "-T", "1", "-S", "198.18.0.1", "-G", "02:00:00:00:00:01",
		"--tcp-options", "mss", "-p", "80,443", "198.19.0.0/30")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d lines, want 8:\n%s", len(lines), out)
	}
	re := regexp.MustCompile(`^198\.18\.0\.1:(6[1-5]\d{3}) > 198\.19\.0\.[0-3]:(80|443) flags=S seq=\d+ ack=0 win=65535 ttl=64 id=\d+$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Fatalf("line %q", l)
		}
	}
}

// TestDryRunStopsOnSignal: a scan paced at one probe per 1,000 s still
// stops within a second of SIGINT, SIGTERM, SIGHUP (an ssh session
// closing) or SIGQUIT and says it was interrupted (exit 1: not Go's
// goroutine dump and exit 2 for SIGQUIT). A dry run sends nothing, so this
// runs anywhere.
func TestDryRunStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			self, _ := os.Executable()
			cmd := exec.Command(self, "scan", "--dry-run", "-S", "198.18.0.1", "-G", "02:00:00:00:00:01", "--no-default-blocklist",
				"-p", "80", "--rate", "0.001", "198.18.0.0/24")
			cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var errb bytes.Buffer
			sc := bufio.NewScanner(stderr)
			for sc.Scan() { // the signal handler is installed before the scan starts
				errb.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "scan starting") {
					break
				}
			}
			start := time.Now()
			cmd.Process.Signal(sig)
			for sc.Scan() {
				errb.WriteString(sc.Text() + "\n")
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitError || !strings.Contains(errb.String(), "interrupted before every probe was sent") {
				t.Fatalf("err %v\n%s", err, errb.String())
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v to stop", d)
			}
		})
	}
}

func TestDefaultThreads(t *testing.T) {
	for _, tt := range []struct {
		rate      float64
		bandwidth bool
		cores     int
		want      int
	}{{10_000, false, 2, 1}, {250_000, false, 2, 1}, {250_001, false, 2, 2}, {2e6, false, 4, 4}, {2e6, false, 2, 2}, {0, false, 8, 8}, {1000, true, 4, 4}, {0.5, false, 2, 1}} {
		if got := defaultThreads(tt.rate, tt.bandwidth, tt.cores); got != tt.want {
			t.Errorf("defaultThreads(%g, %v, %d) = %d, want %d", tt.rate, tt.bandwidth, tt.cores, got, tt.want)
		}
	}
}

func TestTargetsAndCount(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "t.txt")
	os.WriteFile(list, []byte("198.18.0.0/24\r\n# c\r\n\r\n198.18.0.128/25\r\n198.18.1.0-198.18.1.3"), 0o644)
	block := filepath.Join(dir, "b.txt")
	os.WriteFile(block, []byte("198.18.0.0/26\n"), 0o644)
	out, errs, code := reach(t, "targets", "--no-default-blocklist", "-b", block, "@"+list)
	if code != 0 || out != "198.18.0.64/26\n198.18.0.128/25\n198.18.1.0/30\n" || !strings.Contains(errs, "196 addresses in 3 prefixes") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, _, _ = reach(t, "iterate", "--no-default-blocklist", "-b", block, "-I", list, "-p", "1-3", "--count")
	if out != "588\n" {
		t.Fatalf("count = %q, want 588", out)
	}
	mixed := filepath.Join(dir, "mixed.txt")
	os.WriteFile(mixed, []byte("2001:db8::/32\n198.18.0.0/26\n::1\n"), 0o644)
	mixedBlock := filepath.Join(dir, "mixed-block.txt")
	os.WriteFile(mixedBlock, []byte("198.18.0.0/28\nfe80::/10\n"), 0o644)
	out, errs, code = reach(t, "targets", "--no-default-blocklist", "-w", mixed, "-b", mixedBlock, "@"+list)
	if code != 0 || out != "198.18.0.16/28\n198.18.0.32/27\n" || strings.Count(errs, "has IPv6 entries") != 2 ||
		!strings.Contains(errs, `allowlist has IPv6 entries; reach scans IPv4 only and skips them" file=`+mixed+" first="+mixed+":1 entry=2001:db8::/32 count=2") ||
		!strings.Contains(errs, `blocklist has IPv6 entries; reach scans IPv4 only and skips them" file=`+mixedBlock+" first="+mixedBlock+":2 entry=fe80::/10 count=1") {
		t.Fatalf("IPv6 in allow and block lists: exit %d, stdout %q, stderr %q; want one warning per list and the IPv4 entries applied", code, out, errs)
	}
	out, errs, code = reach(t, "scan", "--dry-run", "--no-default-blocklist", "--seed", "1", "-p", "80", "-b", mixed, "198.18.0.64/31")
	if code != 0 || strings.Count(errs, "has IPv6 entries") != 1 {
		t.Fatalf("scan with IPv6 in the blocklist: exit %d, stdout %q, stderr %q; want a dry run and one warning", code, out, errs)
	}
	out, _, _ = reach(t, "targets", "--asn-db", "../../testdata/asn/ip-location-db-asn-slice.csv", "--count", "AS13335")
	if out != "1615360\n" {
		t.Fatalf("AS13335 count = %q", out)
	}
}

func TestBadInputExitsTwoAndPrintsNothing(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("198.18.0.1\nscanme.example\n"), 0o644)
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("# nothing yet\n"), 0o644)
	asList := filepath.Join(dir, "as.txt")
	os.WriteFile(asList, []byte("AS13335\nAS0\n"), 0o644)
	long := filepath.Join(dir, "long.txt")
	os.WriteFile(long, []byte("198.18.0.1\n"+strings.Repeat("9", 2<<20)+"\n"), 0o644)
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"iterate", "-p", "80", "-I", bad}, bad + ":2: \"scanme.example\": not an IPv4 address: hostnames"},
		{[]string{"iterate", "198.18.0.1"}, "no ports"},
		{[]string{"iterate", "-p", "0", "198.18.0.1"}, "port 0 out of range"},
		{[]string{"iterate", "-p", "90-80", "198.18.0.1"}, "reversed range"},
		{[]string{"iterate", "-p", "80", "198.18.0.0/24"}, "198.18.0.0/15 from default blocklist (benchmarking, RFC 2544) removed 256"},
		{[]string{"iterate", "-p", "80", "2001:db8::1"}, "IPv6 targets are not supported yet"},
		{[]string{"iterate", "-p", "80", "198.18.0.1", "-T", "2"}, "flags go before the targets"},
		{[]string{"iterate", "-p", "80", "--seed", "1", "--shards", "2", "--shard", "2", "--no-default-blocklist", "198.18.0.1"}, "shard 2 out of range"},
		{[]string{"iterate", "-p", "80", "--shards", "2", "--shard", "1", "--no-default-blocklist", "198.18.0.1"}, "--shards 2 without --seed: every shard would pick its own random order; give the same --seed on every shard"},
		{[]string{"scan", "--dry-run", "-p", "80", "--shards", "3", "--no-default-blocklist", "198.18.0.1"}, "give the same --seed on every shard"},
		{[]string{"targets", "AS64496"}, "--asn-db"},
		{[]string{"iterate", "--bogus"}, "flag provided but not defined"},
		{[]string{"bogus"}, "unknown command \"bogus\""},
		{[]string{"targets", "-w", empty, "0.0.0.0/0"}, "allowlist " + empty + " has no entries"},
		{[]string{"targets", "--asn-db", "../../testdata/asn/ip-location-db-asn-slice.csv", "-I", asList}, asList + ":2: AS0: AS0 not found in ASN dataset"},
		{[]string{"targets", "-I", long}, long + ":2: line longer than 1048576 bytes"},
		{[]string{"iterate", "-p", "80", "-T", "5000", "--no-default-blocklist", "198.18.0.1"}, "5000 sender threads: at most 1024"},
		{[]string{"scan", "--dry-run", "-p", "80", "--rate", "NaN", "--no-default-blocklist", "198.18.0.1"}, "rate NaN"},
		{[]string{"scan", "--dry-run", "-p", "80", "-B", "NaN", "--no-default-blocklist", "198.18.0.1"}, "bandwidth \"NaN\""},
		{[]string{"scan", "--dry-run", "-p", "80", "-S", "0.0.0.0", "--no-default-blocklist", "198.18.0.1"}, "source address 0.0.0.0 cannot send"},
		{[]string{"scan", "--dry-run", "-p", "80", "-G", "ff:ff:ff:ff:ff:ff", "--no-default-blocklist", "198.18.0.1"}, "no next hop"},
		{[]string{"scan", "--dry-run", "-p", "80", "--source-port", "100-50", "--no-default-blocklist", "198.18.0.1"}, "source-port: port list \"100-50\": \"100-50\": reversed range"},
		{[]string{"scan", "--dry-run", "-p", "80", "--cooldown", "-5s", "--no-default-blocklist", "198.18.0.1"}, "must not be negative"},
		{[]string{"scan", "--dry-run", "-p", "80", "-i", "nosuchif0", "--no-default-blocklist", "198.18.0.1"}, "nosuchif0"},
		{[]string{"demo", "extra"}, "demo takes no arguments"},
	}
	for _, tt := range tests {
		out, errs, code := reach(t, tt.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.err) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, no output, %q", tt.args, code, out, errs, tt.err)
		}
	}
}

// FuzzParseIPPort checks the grab target-list parser: whatever it accepts
// is an IPv4 address and a port 1-65535 that read back the same when
// written as ip,port and as ip:port.
func FuzzParseIPPort(f *testing.F) {
	f.Add("198.51.100.7,443")          // the CSV form
	f.Add("198.51.100.7:22")           // the ip:port form
	f.Add("198.51.100.7,80,open,http") // a CSV line with more columns
	f.Add("198.51.100.7,0")            // port 0: refused
	f.Add("::1:22")                    // IPv6: refused
	f.Add("198.51.100.7,65536")        // port out of range
	f.Add(" 198.51.100.7 , 8080 ")     // spaces around CSV fields
	f.Fuzz(func(t *testing.T, s string) {
		a, p, err := parseIPPort(s)
		if err != nil {
			return
		}
		if !a.Is4() || p == 0 {
			t.Fatalf("%q: accepted %v port %d", s, a, p)
		}
		for _, back := range []string{a.String() + "," + strconv.Itoa(int(p)), a.String() + ":" + strconv.Itoa(int(p))} {
			a2, p2, err := parseIPPort(back)
			if err != nil || a2 != a || p2 != p {
				t.Fatalf("%q → %v %d → %q → %v %d %v", s, a, p, back, a2, p2, err)
			}
		}
	})
}

// TestReviewAndDiff runs reach review and reach diff on the fixture scan of
// the exposure package: verdicts, -o output, --fail-on exit codes, and a
// malformed policy's file:line:column.
func TestReviewAndDiff(t *testing.T) {
	const scan, policy = "../../exposure/testdata/demo-scan.ndjson", "../../exposure/testdata/demo-policy.yaml"
	dir := t.TempDir()
	findings := filepath.Join(dir, "findings.csv")
	out, errs, code := reach(t, "review", "--policy", policy, "-o", findings, scan)
	if code != 0 || !strings.Contains(out, "7 open ports on 5 hosts: 3 unexpected, 1 ownerless, 3 expected") ||
		!strings.Contains(out, "critical  unexpected  198.19.1.3:6379") {
		t.Fatalf("review: exit %d\n%s\n%s", code, out, errs)
	}
	rows, err := export.ReadFile(findings)
	if err != nil || len(rows) != 7 {
		t.Fatalf("findings: %d rows, %v", len(rows), err)
	}
	kinds := map[string]int{}
	for _, r := range rows {
		kinds[r.Finding]++
		if r.Severity == "" || r.Class == "" || r.Reason == "" {
			t.Errorf("finding without class, severity or reason: %+v", r)
		}
	}
	if kinds["unexpected"] != 3 || kinds["ownerless"] != 1 || kinds["expected"] != 3 {
		t.Errorf("findings by kind %v", kinds)
	}
	for _, tc := range []struct {
		failOn string
		code   int
	}{{"critical", exitFail}, {"info", exitFail}, {"bogus", exitUsage}} {
		if _, errs, code := reach(t, "review", "--policy", policy, "--fail-on", tc.failOn, scan); code != tc.code {
			t.Errorf("--fail-on %s: exit %d, want %d\n%s", tc.failOn, code, tc.code, errs)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - match: 198.19.0.0/33\n"), 0o644)
	if _, errs, code := reach(t, "review", "--policy", bad, scan); code != exitUsage || !strings.Contains(errs, "bad.yaml:2:12:") {
		t.Errorf("bad policy: exit %d, %q; want 2 and bad.yaml:2:12", code, errs)
	}
	if _, errs, code := reach(t, "review", scan, "--fail-on", "high"); code != exitUsage || !strings.Contains(errs, "flags go before the files") {
		t.Errorf("flag after the files: exit %d, %q", code, errs)
	}

	// the next scan: 6379 gone, nginx upgraded, 9200 new
	old, err := export.ReadFile(scan)
	if err != nil {
		t.Fatal(err)
	}
	var cur []export.Row
	for _, r := range old {
		switch {
		case r.Port == 6379:
			continue
		case r.Product == "nginx":
			r.Version = "1.26.0"
		}
		cur = append(cur, r)
	}
	es := old[0]
	es.Port, es.Service, es.Product, es.Version, es.Auth = 9200, "elasticsearch", "Elasticsearch", "8.13.0", "none"
	cur = append(cur, es)
	next := filepath.Join(dir, "next.parquet")
	w, err := export.Create(next, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cur {
		w.Write(&cur[i])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	changes := filepath.Join(dir, "changes.jsonl")
	out, errs, code = reach(t, "diff", "--fail-on", "critical", "-o", changes, scan, next)
	if code != exitFail || !strings.Contains(out, "198.19.1.1:9200") || !strings.Contains(out, "1.24.0 → 1.26.0") {
		t.Fatalf("diff: exit %d\n%s\n%s", code, out, errs)
	}
	rows, err = export.ReadFile(changes)
	kinds = map[string]int{}
	for _, r := range rows {
		kinds[r.Finding]++
	}
	if err != nil || kinds["new"] != 1 || kinds["gone"] != 1 || kinds["changed"] != 3 {
		t.Errorf("changes by kind %v (%v); want 1 new, 1 gone, 3 changed (nginx on 80, 443, 8443)", kinds, err)
	}
	if _, _, code := reach(t, "diff", scan); code != exitUsage {
		t.Errorf("diff with one file: exit %d", code)
	}
}

// TestReadmeExamples checks the README's shell examples: every file they
// read (@FILE, -I, -w, -b, --asn-db, --policy) exists in the repository,
// and each scan of 0.0.0.0/0 comes right after a warning.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	inputFlag := map[string]bool{"-I": true, "-w": true, "-b": true, "--asn-db": true, "--policy": true}
	blocks := strings.Split(string(readme), "```")
	checked := 0
	for i := 1; i < len(blocks); i += 2 {
		for line := range strings.SplitSeq(blocks[i], "\n") {
			line, _, _ = strings.Cut(line, " #")
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "reach" {
				continue
			}
			for j, a := range f {
				path := ""
				switch {
				case strings.HasPrefix(a, "@"):
					path = a[1:]
				case j > 0 && inputFlag[f[j-1]]:
					path = a
				}
				if path == "" {
					continue
				}
				checked++
				if _, err := os.Stat(filepath.Join("../..", path)); err != nil {
					t.Errorf("README example %q reads %s, which is not in the repository", line, path)
				}
			}
			if len(f) > 1 && f[1] == "scan" && slices.Contains(f, "0.0.0.0/0") && !strings.Contains(blocks[i-1], "Warning: the next command scans the whole IPv4 internet") {
				t.Errorf("README example %q scans everything without a warning just before it", line)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked %d input files in the README's examples; the parser lost them", checked)
	}
}

// TestHabits: what ZMap, masscan and nmap users type gets reach's
// equivalent, or works.
func TestHabits(t *testing.T) {
	const net4 = "198.18.0.0/30"
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exact, when code is 0
		err    string // in stderr, when code is not 0
	}{
		{"target before flags", []string{"iterate", "--no-default-blocklist", "198.18.0.1", "-p", "80"}, exitUsage, "",
			`"-p" after the target "198.18.0.1": flags go before the targets (reach iterate [flags] TARGET...)`},
		{"target before -p80", []string{"scan", "--dry-run", net4, "-p80"}, exitUsage, "", `"-p80" after the target "198.18.0.0/30": flags go before the targets`},
		{"file before flags", []string{"grab", "open.csv", "-o", "x.parquet"}, exitUsage, "", `"-o" after the file "open.csv": flags go before the files (reach grab [flags] FILE...)`},
		{"-p80", []string{"iterate", "-p80", "--no-default-blocklist", "--count", net4}, exitOK, "4\n", ""},
		{"-p22,80-81", []string{"iterate", "-p22,80-81", "--no-default-blocklist", "--count", net4}, exitOK, "12\n", ""},
		{"-T2", []string{"iterate", "-p", "80", "-T2", "--no-default-blocklist", "--count", net4}, exitOK, "4\n", ""},
		{"--dryrun", []string{"scan", "--dryrun", "-p", "80", net4}, exitUsage, "", "flag provided but not defined: -dryrun; in reach: --dry-run"},
		{"-oL", []string{"scan", "-oL", "open.txt", "-p", "80", net4}, exitUsage, "", "-oL; in reach: -o FILE, the format from its extension"},
		{"-oJ", []string{"scan", "-oJ", "open.json", "-p", "80", net4}, exitUsage, "", "-oJ; in reach: -o FILE, the format from its extension"},
		{"-oX", []string{"scan", "-oX", "open.xml", "-p", "80", net4}, exitUsage, "", "-oX; in reach: -o FILE, the format from its extension"},
		{"-v", []string{"scan", "-v", "-p", "80", net4}, exitUsage, "", "-v; in reach: --log-level debug"},
		{"--excludefile", []string{"scan", "--excludefile", "optout.txt", "-p", "80", net4}, exitUsage, "", "-excludefile; in reach: -b FILE"},
		{"-iL", []string{"iterate", "-iL", "targets.txt", "-p", "80"}, exitUsage, "", "-iL; in reach: -I FILE"},
		{"unknown flag, no habit", []string{"iterate", "--frobnicate", "-p", "80", net4}, exitUsage, "", "flag provided but not defined: -frobnicate"},
		{"bad log level", []string{"--log-level", "loud", "iterate", "-p", "80", net4}, exitUsage, "", `log level "loud": want debug, info, warn or error`},
		{"bad log format", []string{"iterate", "--log-format", "xml", "-p", "80", net4}, exitUsage, "", `log format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := reach(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tt.code, out, errs)
			}
			if tt.code == exitOK && out != tt.stdout {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
			if tt.code != exitOK && (out != "" || !strings.Contains(errs, tt.err)) {
				t.Errorf("stdout %q, stderr %q; want no output and %q", out, errs, tt.err)
			}
		})
	}
}

// TestLogFlags: --log-level and --log-format, before the command or after
// it, set the level and format of every log line (here the INFO line that
// names the random seed).
func TestLogFlags(t *testing.T) {
	iterate := []string{"iterate", "--count", "-p", "80", "--no-default-blocklist", "198.18.0.0/30"}
	tests := []struct {
		name  string
		args  []string
		lines int  // log lines on stderr
		json  bool // each a JSON object
	}{
		{"default: text at info", iterate, 1, false},
		{"json", append([]string{"--log-format", "json"}, iterate...), 1, true},
		{"json after the command", append(slices.Clone(iterate[:1]), append([]string{"--log-format", "json"}, iterate[1:]...)...), 1, true},
		{"warn hides info", append([]string{"--log-level", "warn"}, iterate...), 0, false},
		{"warn after the command", append(slices.Clone(iterate[:1]), append([]string{"--log-level", "warn"}, iterate[1:]...)...), 0, false},
		{"global json, local debug", append([]string{"--log-format", "json", "iterate", "--log-level", "debug"}, iterate[1:]...), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := reach(t, tt.args...)
			if code != exitOK || out != "4\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			var lines []string
			for l := range strings.SplitSeq(strings.TrimSpace(errs), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
			if len(lines) != tt.lines {
				t.Fatalf("%d log lines, want %d: %q", len(lines), tt.lines, errs)
			}
			for _, l := range lines {
				var rec struct{ Level, Msg string }
				err := json.Unmarshal([]byte(l), &rec)
				switch {
				case tt.json && (err != nil || rec.Level != "INFO" || !strings.Contains(rec.Msg, "random seed")):
					t.Errorf("line %q: want a JSON INFO record about the seed (%v)", l, err)
				case !tt.json && (err == nil || !strings.Contains(l, "level=INFO msg=\"random seed")):
					t.Errorf("line %q: want a text INFO record about the seed", l)
				}
			}
		})
	}
}
