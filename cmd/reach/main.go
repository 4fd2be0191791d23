// Command reach is a mass port scanner: it probes every (address, port)
// pair of its targets in a seeded random order and reports what answers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // runtime failure
	exitUsage = 2 // bad flags or bad input; nothing was sent
	exitFail  = 3 // review or diff: a finding at or above --fail-on
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx := context.Background() // reach scan handles SIGINT and SIGTERM itself
	exitCode := exitOK
	app := newApp(stdout, stderr, &exitCode)
	if err := app.RunContext(ctx, splitAttached(app, args)); err != nil {
		if errors.Is(err, errListed) {
			return exitOK
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "reach: %v\n", err)
			return exitUsage
		}
		var fe failOnError
		if errors.As(err, &fe) {
			fmt.Fprintf(stderr, "reach: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stderr, "reach: %v\n", err)
		return exitError
	}
	return exitCode
}

// usageError marks bad flags or input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newApp(stdout, stderr io.Writer, exitCode *int) *cli.App {
	// the commands hold log; the Before hooks point it at the handler that
	// --log-level and --log-format choose, before any command runs
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	setLog := func(c *cli.Context) error {
		h, err := logHandler(stderr, flagValue(c, "log-level"), flagValue(c, "log-format"))
		if err != nil {
			return usageError{err}
		}
		*log = *slog.New(h)
		return nil
	}
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{withHabit(err)} }
	commands := []*cli.Command{
		scanCommand(log),
		iterateCommand(log),
		targetsCommand(log),
		demoCommand(log),
		benchCommand(log),
		grabCommand(log),
		reviewCommand(log),
		diffCommand(log),
	}
	for _, c := range commands {
		c.OnUsageError = onUsage
		c.Flags = append(c.Flags, logFlags()...)
		c.Before = func(c *cli.Context) error {
			if err := flagAfterArgs(c); err != nil {
				return err
			}
			return setLog(c)
		}
	}
	return &cli.App{
		Name:         "reach",
		Usage:        "what can the internet reach? a fast stateless TCP SYN port scanner",
		Version:      version,
		Writer:       stdout,
		ErrWriter:    stderr,
		Flags:        logFlags(),
		Before:       setLog,
		Commands:     commands,
		OnUsageError: onUsage,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "reach: unknown command %q; see reach --help\n", name)
			*exitCode = exitUsage
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// logFlags are the flags of the log, given before the command (for every
// command) or after it.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log only records at or above `LEVEL`: debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log records as `FORMAT`: text (key=value) or json (one object a line)"},
	}
}

// flagValue returns the value of the flag name where the command line set
// it, the command's flags before the global ones, else its default.
func flagValue(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if slices.Contains(cc.LocalFlagNames(), name) {
			return cc.String(name)
		}
	}
	return c.String(name)
}

// logHandler returns the slog handler for a --log-level and --log-format.
func logHandler(w io.Writer, level, format string) (slog.Handler, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// flagAfterArgs reports a flag given after the first positional argument:
// there urfave/cli, like Go's flag package, stops parsing flags and takes
// the rest for targets or files, where masscan and nmap take flags
// anywhere. An argument after "--" is the user's to name.
func flagAfterArgs(c *cli.Context) error {
	what := "file"
	switch c.Command.Name {
	case "scan", "iterate", "targets":
		what = "target"
	}
	args := c.Args().Slice()
	for _, a := range args[min(1, len(args)):] {
		if len(a) > 1 && a[0] == '-' {
			return usageError{fmt.Errorf("%q after the %s %q: flags go before the %ss (reach %s [flags] %s...)",
				a, what, args[0], what, c.Command.Name, strings.ToUpper(what))}
		}
	}
	return nil
}

// splitAttached returns args with a one-letter flag and its numeric value
// written as one argument (masscan and nmap take -p80, -p22,443) split
// into two, as Go's flag package wants them: -p80 becomes -p 80 where the
// command has a -p that takes a value and no flag named p80.
func splitAttached(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	var cmd *cli.Command
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case cmd == nil:
			// the command is the first argument that is neither a flag nor
			// the value of a global flag
			if prev := args[i-1]; !strings.HasPrefix(a, "-") && prev != "--log-level" && prev != "--log-format" {
				cmd = app.Command(a)
			}
		case len(a) > 2 && a[0] == '-' && a[1] != '-' && a[2] >= '0' && a[2] <= '9' && takesValue(cmd, a[1:2]) && !hasFlag(cmd, a[1:]):
			out = append(out, a[:2], a[2:])
			continue
		case !strings.HasPrefix(a, "-") && !isValue(cmd, args[i-1]):
			// the first target or file: flags end here (flagAfterArgs
			// names any that follow as the user typed them)
			return append(out, args[i:]...)
		}
		out = append(out, a)
	}
	return out
}

// isValue reports whether the argument after prev is prev's value: prev
// is a flag of cmd that takes one, not given as -flag=value.
func isValue(cmd *cli.Command, prev string) bool {
	name := strings.TrimLeft(prev, "-")
	return name != prev && !strings.Contains(name, "=") && takesValue(cmd, name)
}

// takesValue reports whether cmd has a flag called name that takes a value.
func takesValue(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if v, ok := f.(cli.DocGenerationFlag); ok && v.TakesValue() && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// hasFlag reports whether cmd has a flag called name.
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// withHabit adds to an unknown-flag error what reach calls the flag of
// ZMap, masscan or nmap that the user typed.
func withHabit(err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err
	}
	if h := habit(strings.TrimPrefix(name, "-")); h != "" {
		return fmt.Errorf("%w; in reach: %s", err, h)
	}
	return err
}

// habit returns reach's equivalent of a flag of ZMap, masscan or nmap
// (named without dashes) that reach does not define, or "".
func habit(name string) string {
	switch name {
	case "dryrun":
		return "--dry-run"
	case "oL", "oJ", "oX", "oG", "oB", "oD", "oN", "oA", "output-file":
		return "-o FILE, the format from its extension (.csv, .jsonl, .parquet, .arrow) or from -O FORMAT"
	case "v", "vv", "vvv", "verbose", "verbosity", "d":
		return "--log-level debug (and --log-format json for machine-readable logs)"
	case "excludefile", "exclude-file", "blacklist-file", "blocklist":
		return "-b FILE (repeatable)"
	case "exclude":
		return "put the addresses in a file for -b FILE"
	case "includefile", "iL", "list-of-ips":
		return "-I FILE or @FILE"
	case "whitelist-file", "allowlist":
		return "-w FILE"
	case "adapter", "e":
		return "-i INTERFACE"
	case "adapter-ip":
		return "-S ADDRESS"
	case "router-mac":
		return "-G MAC"
	case "wait", "cooldown-time":
		return "-c DURATION (--cooldown, e.g. -c 8s)"
	case "top-ports":
		return "no default port list: give -p, e.g. -p 22,80,443"
	case "max-rate":
		return "-r PPS (--rate)"
	case "P":
		return "--probes N"
	case "M", "probe-module":
		return "no probe modules: reach sends TCP SYN probes"
	case "open", "open-only":
		return "the default: only open ports are printed (--output-closed adds closed ones)"
	}
	return ""
}
