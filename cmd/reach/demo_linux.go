package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
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
	"github.com/reachscan/reach/internal/safe"
)

// demoPorts are the ports the demo scans: those of the real servers and a
// few more. The XDP responder's ground truth opens 22, 80, 443, 3306, 5432,
// 6379 and 8080 on most addresses; in 198.19.1.0/24 the real servers
// answer through the far namespace's kernel.
const demoPorts = "21,22,23,80,443,3306,5432,6379,8080,8443,9200"

// The files the demo writes into --out.
const (
	demoScanFile     = "scan.parquet"
	demoMetaFile     = "metadata.json"
	demoServicesFile = "services.parquet"
	demoReviewFile   = "review.csv"
	demoPolicyFile   = "policy.yaml" // the embedded policy, when no --policy is given
)

func demoCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build the simulated network (namespaces, 198.18.0.0/15 only), scan it, check the result against its ground truth, identify its real servers with --banners, review them against a demo policy, tear it down",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "targets", Value: "198.19.0.0/16", Usage: "targets inside 198.19.0.0/16"},
			&cli.Float64Flag{Name: "rate", Value: 100000, Usage: "send rate in pps"},
			&cli.StringFlag{Name: "out", Value: "demo-out", Usage: "directory for scan.parquet, metadata.json, services.parquet, review.csv and policy.yaml"},
			&cli.StringFlag{Name: "policy", Usage: "intended exposure of the demo network, for the review (default: the built-in demo policy, written to OUT/policy.yaml)"},
		},
		Action: func(c *cli.Context) (err error) {
			// SIGINT or SIGTERM: stop, then remove the namespaces, servers
			// and temporary files (the deferred closes run)
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.Context = ctx
			dir := c.String("out")
			defer func() {
				// a scan stopped mid-way leaves its NAME.tmp files
				err = errors.Join(err, removeTemps(dir))
				if err != nil && ctx.Err() != nil {
					err = errors.New("demo interrupted: the simulated network, its servers and temporary files were removed")
				}
			}()
			es, err := demoTargets(c)
			if err != nil {
				return err
			}
			if err := testnet.Available(); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			pol, polPath, err := demoPolicy(c.String("policy"), dir)
			if err != nil {
				return err
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
			truth, err := demoScan(c, nw, self, es)
			if err != nil {
				return err
			}
			rep, err := demoReview(c, nw, self, pol)
			if err != nil {
				return err
			}
			return demoSummary(c, truth, rep, self, polPath)
		},
	}
}

// demoTargets checks the demo's arguments and returns its targets.
func demoTargets(c *cli.Context) ([]target.Entry, error) {
	if c.Args().Len() > 0 {
		return nil, usageError{fmt.Errorf("demo takes no arguments (got %q); use --targets", c.Args().First())}
	}
	if r := c.Float64("rate"); r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return nil, usageError{fmt.Errorf("rate %g: want packets per second ≥ 0", r)}
	}
	es, err := target.ParseArgs([]string{c.String("targets")})
	if err != nil {
		return nil, usageError{err}
	}
	for _, e := range es {
		if e.IsASN || e.First>>16 != 0xC613 || e.Last>>16 != 0xC613 {
			return nil, usageError{fmt.Errorf("demo targets must lie inside 198.19.0.0/16, the simulated internet")}
		}
	}
	return es, nil
}

// demoPolicy loads the policy file at path, or, when path is empty, the
// built-in demo policy, which it writes to dir so that the review can be
// run again. It returns the policy and the file it is in.
func demoPolicy(path, dir string) (*exposure.Policy, string, error) {
	if path != "" {
		pol, err := exposure.LoadPolicy(path, nil)
		if err != nil {
			return nil, "", usageError{err}
		}
		return pol, path, nil
	}
	path = filepath.Join(dir, demoPolicyFile)
	pol, err := exposure.ParsePolicy(path, []byte(testnet.DemoPolicy), nil)
	if err != nil {
		return nil, "", fmt.Errorf("built-in demo policy: %w", err)
	}
	if err := os.WriteFile(path, []byte(testnet.DemoPolicy), 0o644); err != nil {
		return nil, "", fmt.Errorf("write demo policy: %w", err)
	}
	return pol, path, nil
}

// removeTemps removes the temporary files that a stopped step leaves of the
// demo's files in dir.
func removeTemps(dir string) error {
	var errs []error
	for _, f := range []string{demoScanFile, demoMetaFile, demoServicesFile, demoReviewFile} {
		tmps, _ := filepath.Glob(filepath.Join(dir, f+".*.tmp")) // NAME.RUN.tmp, unique per run
		for _, t := range tmps {
			if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// demoTruth is how the first scan compared with the ground truth.
type demoTruth struct {
	answered, want, wrong int
}

// demoScan scans the targets from the scanner namespace and checks every
// row against the ground truth of the responder and the real servers.
func demoScan(c *cli.Context, nw *testnet.Network, self string, es []target.Entry) (demoTruth, error) {
	out := c.App.Writer
	dir := c.String("out")
	result, meta := filepath.Join(dir, demoScanFile), filepath.Join(dir, demoMetaFile)
	args := []string{"scan", "--no-default-blocklist", "--seed", "2026", "-p", demoPorts, "--rate", fmt.Sprint(c.Float64("rate")),
		"--cooldown", "1s", "--output-closed", "-o", result, "-m", meta, c.String("targets")}
	start := time.Now()
	if err := runIn(c, nw, self, args); err != nil {
		return demoTruth{}, err
	}
	rows, err := export.ReadFile(result)
	if err != nil {
		return demoTruth{}, err
	}
	byPort := map[uint16][2]int{}
	shown := 0
	var servers []string
	reports := make([]testnet.Report, len(rows))
	for i, r := range rows {
		open := r.Status == export.StatusOpen
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
		return demoTruth{}, err
	}
	scope := testnet.Scope{Ports: scanned}
	for _, e := range es {
		scope.Ranges = append(scope.Ranges, target.Range{First: e.First, Last: e.Last})
	}
	v := testnet.Verify(testnet.Truth{Servers: true}, scope, reports)
	fmt.Fprintf(out, "%d of %d answering pairs answered (silent hosts stay silent); %d disagree with the ground truth, %d repeated\n", v.Reported, v.Answering, v.Wrong, v.Duplicates)
	truth := demoTruth{answered: v.Reported, want: v.Answering, wrong: v.Wrong + v.Duplicates}
	if !v.Exact() {
		return truth, fmt.Errorf("demo: result differs from the ground truth: %v", v)
	}
	return truth, nil
}

// runIn runs this binary with args in the scanner namespace, its output
// going to stderr and its log in the demo's level and format, after saying
// what it runs.
func runIn(c *cli.Context, nw *testnet.Network, self string, args []string) error {
	fmt.Fprintf(c.App.Writer, "\nin namespace %s: reach %s\n", nw.Scan, shellJoin(args))
	logArgs := []string{"--log-level", flagValue(c, "log-level"), "--log-format", flagValue(c, "log-format")}
	cmd := nw.Command(c.Context, nw.Scan, self, append(logArgs, args...)...)
	cmd.Stdout, cmd.Stderr = c.App.ErrWriter, c.App.ErrWriter
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("reach %s in %s: %w", args[0], nw.Scan, err)
	}
	return nil
}

// demoServicePorts are the ports of the real servers, usual and unusual.
const demoServicePorts = "21,22,80,443,2200,3306,5432,6379,7000,8080,8443,9200,9444,10080"

// demoReview scans the real servers' block with --banners and reviews what
// answers against the demo policy: the summary a security reviewer reads
// first. It writes the review to review.csv.
func demoReview(c *cli.Context, nw *testnet.Network, self string, pol *exposure.Policy) (exposure.Report, error) {
	out := c.App.Writer
	dir := c.String("out")
	services := filepath.Join(dir, demoServicesFile)
	args := []string{"scan", "--no-default-blocklist", "--seed", "2026", "-p", demoServicePorts, "--rate", "5000",
		"--cooldown", "1s", "--banners", "--grab-timeout", "8s", "-q", "-o", services, testnet.ServerBlock.String()}
	if err := runIn(c, nw, self, args); err != nil {
		return exposure.Report{}, err
	}
	rows, err := export.ReadFile(services)
	if err != nil {
		return exposure.Report{}, err
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
			tls = fmt.Sprintf(", %s, certificate %s (self-signed %v, expires %s)", r.TLS.Version, safe.Terminal(r.TLS.Subject), r.TLS.SelfSigned, r.TLS.NotAfter.Format("2006-01-02"))
		}
		auth := ""
		if r.Auth == "none" {
			auth = ", answers without credentials"
		}
		fmt.Fprintf(out, "  %s:%d %s: %s %s (%s)%s%s\n", target.Addr(r.Addr), r.Port, r.GrabStatus, safe.Terminal(r.Product), safe.Terminal(r.Version), safe.Terminal(r.Service), auth, tls)
	}
	fmt.Fprintf(out, "\nreview against the demo policy:\n")
	rep := exposure.Review(rows, pol)
	if err := exposure.WriteText(out, rep); err != nil {
		return rep, err
	}
	w, err := export.Create(filepath.Join(dir, demoReviewFile), export.CSV, nil)
	if err != nil {
		return rep, err
	}
	for _, r := range rep.Rows() {
		if err := w.Write(&r); err != nil {
			return rep, errors.Join(err, w.Close())
		}
	}
	return rep, w.Close()
}

// demoSummary ends the demo: a short verdict, the files it wrote and
// commands to go on with, which work when pasted into a shell in the
// current directory.
func demoSummary(c *cli.Context, truth demoTruth, rep exposure.Report, self, policy string) error {
	dir := c.String("out")
	var b strings.Builder
	toAct := rep.ByKind[exposure.Unexpected] + rep.ByKind[exposure.Ownerless]
	fmt.Fprintf(&b, "\nverdict: the scan matches the ground truth (%d of %d answering pairs, none wrong); the review finds %d exposures to act on (%d critical, %d high) among %d open ports on %d hosts.\n",
		truth.answered, truth.want, toAct, rep.BySeverity[exposure.Critical], rep.BySeverity[exposure.High], len(rep.Findings), rep.Hosts)
	b.WriteString("\nfiles written:\n")
	files := [][2]string{
		{filepath.Join(dir, demoScanFile), "every probed pair of the first scan, open and closed"},
		{filepath.Join(dir, demoMetaFile), "that scan's seed, layout, counters and timings"},
		{filepath.Join(dir, demoServicesFile), "the real servers' ports with banners and services"},
		{filepath.Join(dir, demoReviewFile), "every open port with its class, severity, owner and verdict"},
	}
	if c.String("policy") == "" {
		files = append(files, [2]string{policy, "the built-in demo policy the review used"})
	}
	for _, f := range files {
		fmt.Fprintf(&b, "  %-*s  %s\n", len(filepath.Join(dir, demoServicesFile)), f[0], f[1])
	}
	reach := invocation(self)
	services := shellQuote(filepath.Join(dir, demoServicesFile))
	b.WriteString("\nnext, in a shell in this directory:\n")
	fmt.Fprintf(&b, "  %s review --policy %s %s\n", reach, shellQuote(policy), services)
	fmt.Fprintf(&b, "  %s review --policy %s --fail-on critical %s >/dev/null; echo \"exit $?\"   # 3: a critical finding, for cron and CI\n", reach, shellQuote(policy), services)
	fmt.Fprintf(&b, "  %s iterate -p 22,80 --seed 2026 --no-default-blocklist 198.19.1.0/30   # the scan order, no privileges\n", reach)
	if _, err := exec.LookPath("duckdb"); err == nil {
		fmt.Fprintf(&b, "  duckdb -c \"SELECT port, status, count(*) AS n FROM '%s' GROUP BY ALL ORDER BY ALL\"\n", filepath.Join(dir, demoScanFile))
	}
	_, err := io.WriteString(c.App.Writer, b.String())
	return err
}

// invocation returns how a shell in the current directory runs the binary
// at self: "reach" where PATH finds it, else its path (relative when it lies
// below the current directory), quoted for the shell.
func invocation(self string) string {
	if p, err := exec.LookPath("reach"); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "reach"
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, self); err == nil && filepath.IsLocal(rel) {
			return shellQuote("./" + rel)
		}
	}
	return shellQuote(self)
}

// shellQuote quotes s for a POSIX shell where it needs it.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes each of args and joins them with spaces.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
