package bench

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
)

// The scanners the harness can compare.
const (
	Reach = "reach"
	// ReachCheckpoint is reach writing a checkpoint every second, with its
	// output committed at each: the cost of losing no result after a crash.
	ReachCheckpoint = "reach-checkpoint"
	ZMap            = "zmap"
	Masscan         = "masscan"
)

// Peers are the other scanners, compared when installed.
var peers = []string{ZMap, Masscan}

// invocation is one tool's command line for one run.
type invocation struct {
	name string
	args []string
	env  []string
	// output is the file the tool writes its hits to (recall mode), and
	// stdout, when set, the file its standard output goes to.
	output, stdout string
	// parse reads output into the set of open (address, port) pairs and the
	// number of lines that repeat an earlier pair.
	parse func(path string) (open map[pair]bool, dups int, err error)
}

type pair struct {
	addr uint32
	port uint16
}

// spec describes one run for a tool: the targets, the rate and threads.
type spec struct {
	mode    string
	threads int
	rate    int    // pps; 0 = as fast as it can
	ports   string // "80" or "1-1000"
	prefix  string // 198.19.0.0/16
	perIP   int    // ZMap -P: probes per target, to make one port last
	cool    time.Duration
	seed    int
	iface   string
	gateway string // MAC of the next hop
	dir     string // scratch directory for outputs
}

// command builds the invocation of tool for s.
func (h *Harness) command(tool string, s spec) (invocation, error) {
	out := fmt.Sprintf("%s/%s-%d.out", s.dir, tool, time.Now().UnixNano())
	switch tool {
	case Reach, ReachCheckpoint:
		args := []string{"scan", "--no-default-blocklist", "--seed", strconv.Itoa(s.seed),
			"-p", s.ports, "--rate", strconv.Itoa(s.rate), "-T", strconv.Itoa(s.threads),
			"--tcp-options", "none", "--cooldown", s.cool.String(), "--quiet", "-G", s.gateway}
		args = append(args, "-o", out+".csv")
		if tool == ReachCheckpoint {
			args = append(args, "--checkpoint", out+".ck", "--checkpoint-interval", "1s")
		}
		return invocation{name: h.cfg.Reach, args: append(args, s.prefix), env: h.cfg.Env, output: out + ".csv", parse: parseReach}, nil
	case ZMap:
		empty := s.dir + "/empty-blocklist.conf"
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			return invocation{}, err
		}
		port := s.ports
		if s.perIP > 1 {
			port = "80" // one port per scan in ZMap 2; -P makes it last
		}
		args := []string{"-p", port, "-i", s.iface, "-S", "198.18.0.1", "-G", s.gateway,
			"-T", strconv.Itoa(s.threads), "-b", empty, "-e", strconv.Itoa(s.seed),
			"--cooldown-time", strconv.Itoa(int(s.cool.Seconds())), "-q", "--disable-syslog",
			"-f", "saddr", "--output-filter", "success = 1", "-o", out}
		// ZMap's -r counts targets, each sent -P probes in a row
		switch {
		case s.rate == 0:
			args = append(args, "-B", "100G")
		case s.perIP > 1:
			args = append(args, "-r", strconv.Itoa(max(1, s.rate/s.perIP)))
		default:
			args = append(args, "-r", strconv.Itoa(s.rate))
		}
		if s.perIP > 1 {
			args = append(args, "-P", strconv.Itoa(s.perIP))
		}
		p, _ := strconv.Atoi(port)
		return invocation{name: "zmap", args: append(args, s.prefix), output: out,
			parse: func(path string) (map[pair]bool, int, error) { return parseZMap(path, uint16(p)) }}, nil
	case Masscan:
		rate := s.rate
		if rate == 0 {
			rate = 100_000_000
		}
		args := []string{s.prefix, "-p" + s.ports, "--rate", strconv.Itoa(rate),
			"--interface", s.iface, "--router-mac", s.gateway, "--adapter-ip", "198.18.0.1",
			"--adapter-port", "61000", "--seed", strconv.Itoa(s.seed),
			"--wait", strconv.Itoa(int(s.cool.Seconds()))}
		// masscan prints each hit to stdout; line-buffered (stdbuf) so the
		// lines survive the kill that ends it (see stopMasscan)
		return invocation{name: "stdbuf", args: append([]string{"-oL", "masscan"}, args...), stdout: out, output: out, parse: parseMasscan}, nil
	}
	return invocation{}, fmt.Errorf("unknown tool %q", tool)
}

func parseReach(path string) (map[pair]bool, int, error) {
	rows, err := export.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	open, dups := map[pair]bool{}, 0
	for _, r := range rows {
		if r.Status != export.StatusOpen {
			continue
		}
		p := pair{r.Addr, r.Port}
		if open[p] {
			dups++
		}
		open[p] = true
	}
	return open, dups, nil
}

// parseZMap reads ZMap's CSV output with the saddr field (a header line,
// then one address per SYN-ACK, repeats included).
func parseZMap(path string, port uint16) (map[pair]bool, int, error) {
	return parseLines(path, func(line string) (pair, bool) {
		a, err := netip.ParseAddr(strings.TrimSpace(line))
		if err != nil || !a.Is4() {
			return pair{}, false
		}
		return pair{target.U32(a), port}, true
	})
}

// parseMasscan reads masscan's standard output: one line per SYN-ACK,
// "Discovered open port PORT/tcp on ADDR".
func parseMasscan(path string) (map[pair]bool, int, error) {
	return parseLines(path, func(line string) (pair, bool) {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "Discovered" || !strings.HasSuffix(f[3], "/tcp") {
			return pair{}, false
		}
		port, err1 := strconv.ParseUint(strings.TrimSuffix(f[3], "/tcp"), 10, 16)
		a, err2 := netip.ParseAddr(f[5])
		if err1 != nil || err2 != nil || !a.Is4() {
			return pair{}, false
		}
		return pair{target.U32(a), uint16(port)}, true
	})
}

func parseLines(path string, parse func(string) (pair, bool)) (map[pair]bool, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	open, dups := map[pair]bool{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, ok := parse(sc.Text())
		if !ok {
			continue
		}
		if open[p] {
			dups++
		}
		open[p] = true
	}
	return open, dups, sc.Err()
}

// version asks a tool for its version string.
func version(tool, reach string) string {
	var out []byte
	switch tool {
	case Reach, ReachCheckpoint:
		out, _ = exec.Command(reach, "--version").CombinedOutput()
		out = []byte(strings.TrimPrefix(string(out), "reach version "))
	case ZMap:
		out, _ = exec.Command("zmap", "--version").CombinedOutput()
	case Masscan:
		out, _ = exec.Command("masscan", "--version").CombinedOutput()
	}
	for l := range strings.SplitSeq(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "unknown"
}
