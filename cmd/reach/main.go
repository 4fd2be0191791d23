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
	if err := app.RunContext(ctx, args); err != nil {
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
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
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
	}
	return &cli.App{
		Name:         "reach",
		Usage:        "what can the internet reach? a fast stateless TCP SYN port scanner",
		Version:      version,
		Writer:       stdout,
		ErrWriter:    stderr,
		Commands:     commands,
		OnUsageError: onUsage,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "reach: unknown command %q; see reach --help\n", name)
			*exitCode = exitUsage
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}
