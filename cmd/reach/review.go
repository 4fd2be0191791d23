package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/reachscan/reach/engine/target/asn"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/exposure"
)

// failOnError reports findings at or above --fail-on: exit code 3.
type failOnError struct{ msg string }

func (e failOnError) Error() string { return e.msg }

func judgeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "also write the findings to `PATH` (.csv, .jsonl, .parquet, .arrow)"},
		&cli.StringFlag{Name: "output-format", Aliases: []string{"O"}, Usage: "force the output format: csv, jsonl, parquet or arrow"},
		&cli.StringFlag{Name: "fail-on", Usage: "exit 3 when a finding has this `SEVERITY` or higher: info, low, medium, high, critical"},
	}
}

// readScans reads and concatenates reach output files.
func readScans(paths []string) ([]export.Row, error) {
	var rows []export.Row
	for _, p := range paths {
		rs, err := export.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// openOutput creates the -o/-O output of c (scan, grab, review, diff), or
// returns nil when there is none. Callers open it before the work, so a bad
// path is an error before anything is sent or printed.
func openOutput(c *cli.Context) (export.Writer, error) {
	p := c.String("output")
	if p == "" {
		return nil, nil
	}
	var f export.Format
	if s := c.String("output-format"); s != "" {
		var err error
		if f, err = export.ParseFormat(s); err != nil {
			return nil, usageError{err}
		}
	}
	w, err := export.Create(p, f, c.App.Writer)
	if err != nil {
		return nil, usageError{err}
	}
	return w, nil
}

// writeRows writes rows to w (nil: no -o) and closes it.
func writeRows(w export.Writer, rows []export.Row) error {
	if w == nil {
		return nil
	}
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

func failOn(c *cli.Context) (exposure.Severity, bool, error) {
	s := c.String("fail-on")
	if s == "" {
		return 0, false, nil
	}
	sev, err := exposure.ParseSeverity(s)
	if err != nil {
		return 0, false, usageError{err}
	}
	return sev, true, nil
}

func reviewCommand(_ *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "review",
		Usage:     "judge a scan: risk class and severity of every open port, against the intended exposure a policy declares",
		ArgsUsage: "SCAN... (reach output files: .parquet, .arrow, .csv, .jsonl)",
		Description: `Each open port gets a class and a severity from what answers (data services critical,
remote administration high, web on 80/443 info, web elsewhere and unknown services medium)
and, with --policy, a verdict: unexpected (the governing rule does not allow it), ownerless
(allowed, but nobody owns it) or expected (allowed and owned; counted, not listed). The most
specific rule governs an address. Findings print sorted by severity, critical first.
Exit codes: 0 reviewed, 1 runtime failure, 2 bad flags, input or policy (with file:line:column),
3 a finding at or above --fail-on.`,
		Flags: append(judgeFlags(),
			&cli.StringFlag{Name: "policy", Usage: "intended exposure, YAML `FILE` (rules per CIDR, address or AS: allowed ports or services, owner, note; a default)"},
			&cli.StringFlag{Name: "asn-db", Usage: "IP-to-AS dataset `FILE` for AS rules of the policy (pfx2as, ip2asn TSV, ip-location-db CSV, mmdb; gzip ok)"},
		),
		Action: func(c *cli.Context) error {
			if c.Args().Len() == 0 {
				return usageError{errors.New("review needs at least one SCAN file")}
			}
			sev, fail, err := failOn(c)
			if err != nil {
				return err
			}
			var pol *exposure.Policy
			if p := c.String("policy"); p != "" {
				var res exposure.ASNResolver
				if db := c.String("asn-db"); db != "" {
					d, err := asn.Open(db)
					if err != nil {
						return usageError{err}
					}
					res = d
				}
				if pol, err = exposure.LoadPolicy(p, res); err != nil {
					return usageError{err}
				}
			}
			rows, err := readScans(c.Args().Slice())
			if err != nil {
				return usageError{err}
			}
			w, err := openOutput(c)
			if err != nil {
				return err
			}
			rep := exposure.Review(rows, pol)
			switch {
			case pol == nil:
				fmt.Fprintln(c.App.Writer, "no --policy: every exposure counts as unexpected")
			case len(pol.Rules) == 0 && !pol.Default.Allow.Any && len(pol.Default.Allow.Ports) == 0 && len(pol.Default.Allow.Services) == 0:
				fmt.Fprintf(c.App.Writer, "policy %s declares no rules and allows nothing by default: every exposure counts as unexpected\n", c.String("policy"))
			}
			if err := exposure.WriteText(c.App.Writer, rep); err != nil {
				return err
			}
			if err := writeRows(w, rep.Rows()); err != nil {
				return err
			}
			if fail && exposure.FailOn(rep, sev) {
				return failOnError{fmt.Sprintf("findings at or above %s", sev)}
			}
			return nil
		},
	}
}

func diffCommand(_ *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "what changed between two scans of the same targets: new and gone open ports, changed service, product, version or certificate",
		ArgsUsage: "OLD NEW (reach output files)",
		Description: `Exit codes: 0 compared, 1 runtime failure, 2 bad flags or input, 3 a change at or above
--fail-on (a gone port is info).`,
		Flags: judgeFlags(),
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 2 {
				return usageError{fmt.Errorf("diff needs OLD and NEW scan files (got %d arguments)", c.Args().Len())}
			}
			sev, fail, err := failOn(c)
			if err != nil {
				return err
			}
			old, err := export.ReadFile(c.Args().Get(0))
			if err != nil {
				return usageError{err}
			}
			cur, err := export.ReadFile(c.Args().Get(1))
			if err != nil {
				return usageError{err}
			}
			w, err := openOutput(c)
			if err != nil {
				return err
			}
			changes := exposure.Diff(old, cur)
			if err := exposure.WriteDiffText(c.App.Writer, changes); err != nil {
				return err
			}
			if err := writeRows(w, exposure.ChangeRows(changes)); err != nil {
				return err
			}
			if fail && exposure.DiffFailOn(changes, sev) {
				return failOnError{fmt.Sprintf("changes at or above %s", sev)}
			}
			return nil
		},
	}
}
