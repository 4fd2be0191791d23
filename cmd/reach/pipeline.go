package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/results"
)

// outputFlags are the output flags of scan and grab.
func outputFlags(usage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: usage},
		&cli.StringFlag{Name: "output-format", Aliases: []string{"O"}, Usage: "force the output format: csv, jsonl, parquet or arrow (default: from the extension; jsonl for - and streams)"},
		&cli.StringFlag{Name: "fields", Aliases: []string{"f"}, Usage: "write only these `COLUMNS` of -o (comma-separated, kept in schema order; see --list-fields)"},
		&cli.BoolFlag{Name: "list-fields", Usage: "print every output column with its type and meaning, and exit"},
	}
}

// errListed ends a command that has printed what was asked (exit 0).
var errListed = errors.New("listed")

// listFields is the Before hook of the commands with outputFlags.
func listFields(c *cli.Context) error {
	if !c.Bool("list-fields") {
		return nil
	}
	w := tabwriter.NewWriter(c.App.Writer, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "COLUMN\tTYPE\tNULL\tMEANING")
	for _, f := range export.List() {
		null := ""
		if f.Nullable {
			null = "null"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Name, f.Type, null, f.Doc)
	}
	w.Flush()
	return errListed
}

// outputFormat is -O, validated.
func outputFormat(c *cli.Context) (export.Format, error) {
	s := c.String("output-format")
	if s == "" {
		return "", nil
	}
	f, err := export.ParseFormat(s)
	if err != nil {
		return "", usageError{err}
	}
	return f, nil
}

// openPipeline opens the output of -o (or text lines on stdout) and starts
// the pipeline, with the grab pool when grab is set. Nothing is written
// until rows come; Abort leaves every final name as it was.
func openPipeline(ctx context.Context, c *cli.Context, log *slog.Logger, o results.Output, grab bool, shard uint16, prior *results.Prior) (*results.Pipeline, error) {
	f, err := outputFormat(c)
	if err != nil {
		return nil, err
	}
	o.Path, o.Format, o.Stdout, o.Grab, o.Run = c.String("output"), f, c.App.Writer, grab, export.RunID()
	if o.Fields, err = export.ParseFields(c.String("fields")); err != nil {
		return nil, usageError{err}
	}
	switch {
	case o.Fields != nil && o.Path == "":
		return nil, usageError{errors.New("-f picks the columns of -o; give -o FILE or -o - for stdout")}
	case o.Fields != nil && (c.String("checkpoint") != "" || c.String("resume") != ""):
		return nil, usageError{errors.New("-f cannot go with --checkpoint or --resume: a resumed run reads every column of the parts it continues")}
	}
	if prior != nil {
		o.Prior = prior.Parts
	}
	sink, err := results.Open(o)
	if err != nil {
		return nil, usageError{err}
	}
	cfg := results.Config{Sinks: []results.Sink{sink}, Closed: o.Closed, Shard: shard, Prior: prior, Log: log}
	if grab {
		pool, err := newPool(c)
		if err != nil {
			sink.Abort()
			return nil, err
		}
		cfg.Grabs = pool.Start(ctx)
	}
	return results.New(cfg), nil
}

// stages runs the signal handling of a command with a first phase that a
// signal ends softly (stop sending, or stop new grabs) and a hard stop:
// the first SIGINT, SIGTERM or SIGHUP calls soft (the current phase's),
// the next one, or SIGQUIT, calls hard. It returns a function that stops
// listening.
type stages struct {
	mu       sync.Mutex
	soft     func()
	hard     func()
	signaled bool
}

func handleSignals(ctx context.Context, soft, hard func()) (*stages, func()) {
	s := &stages{soft: soft, hard: hard}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case sig := <-sigs:
				s.mu.Lock()
				f := s.soft
				if s.soft == nil || sig == syscall.SIGQUIT {
					f = s.hard
				}
				s.soft, s.signaled = nil, true
				s.mu.Unlock()
				f()
			}
		}
	}()
	return s, func() { signal.Stop(sigs); close(done) }
}

// next makes soft the handler of the next first signal (a new phase).
func (s *stages) next(soft func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.soft != nil || !s.signaled {
		s.soft = soft
	}
}

// grabSummary logs what the grabs found and turns local failures and
// untried targets into an error (a non-zero exit).
func grabSummary(log *slog.Logger, n results.Counts) error {
	args := []any{"rows", n.Rows}
	for _, st := range fingerprint.Statuses() {
		args = append(args, string(st), n.Grabs[st])
	}
	log.Info("grabs finished", append(args, "not_tried", n.NotTried)...)
	var errs []error
	if n.Local > 0 {
		log.Warn("grabs failed on this host (out of file descriptors, buffers or addresses?): their rows say local-error, not what the target did", "count", n.Local)
		errs = append(errs, fmt.Errorf("%d grabs failed on this host (local-error)", n.Local))
	}
	if n.NotTried > 0 {
		errs = append(errs, fmt.Errorf("interrupted: %d targets were not grabbed (their rows have no grab status)", n.NotTried))
	}
	return errors.Join(errs...)
}

// showProgress reports a grab's progress until the returned function is
// called: a bar on a terminal, else a status line every second (none with
// quiet).
func showProgress(c *cli.Context, log *slog.Logger, pipe *results.Pipeline, total int, quiet bool) func() {
	if quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var bar *mpb.Bar
	var p *mpb.Progress
	if f, ok := c.App.ErrWriter.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p = mpb.New(mpb.WithOutput(f), mpb.WithWidth(40))
		bar = p.AddBar(int64(total), mpb.PrependDecorators(decor.Elapsed(decor.ET_STYLE_GO), decor.CountersNoUnit(" %d/%d")),
			mpb.AppendDecorators(decor.AverageETA(decor.ET_STYLE_GO)))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					n, _ := pipe.Progress()
					bar.SetCurrent(int64(n))
					bar.Abort(false)
					p.Wait()
				}
				return
			case now := <-tick.C:
				n, pending := pipe.Progress()
				if bar != nil {
					bar.SetCurrent(int64(n))
					continue
				}
				rate := float64(n) / now.Sub(start).Seconds()
				log.Info(fmt.Sprintf("%s grabbed %d of %d (%.1f%%), %.0f/s, %d in flight or waiting", now.Sub(start).Round(time.Second),
					n, total, 100*float64(n)/float64(max(total, 1)), rate, pending))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
