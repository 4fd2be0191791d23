package exposure

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/internal/safe"
)

// WriteText prints the review as a security reviewer reads it: counts
// first, then a table of every finding that is not expected (critical and
// unexpected first). Expected exposures are counted, not listed; they are
// in the rows written by the export writers.
func WriteText(w io.Writer, rep Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d open %s on %d %s: %d unexpected, %d ownerless, %d expected\n",
		len(rep.Findings), plural(len(rep.Findings), "port", "ports"), rep.Hosts, plural(rep.Hosts, "host", "hosts"),
		rep.ByKind[Unexpected], rep.ByKind[Ownerless], rep.ByKind[Expected])
	b.WriteString("to review by severity:")
	for s := Critical; ; s-- {
		sep := ","
		if s == Info {
			sep = ""
		}
		fmt.Fprintf(&b, " %s %d%s", s, rep.BySeverity[s], sep)
		if s == Info {
			break
		}
	}
	b.WriteString("\n")
	var rows [][]string
	for _, f := range rep.Findings {
		if f.Kind == Expected {
			continue
		}
		rows = append(rows, []string{f.Severity.String(), string(f.Kind), Endpoint(f.Row), describe(f.Row), orDash(f.Owner), f.Reason})
	}
	if len(rows) > 0 {
		b.WriteString("\n")
		writeTable(&b, []string{"SEVERITY", "KIND", "ADDRESS", "SERVICE", "OWNER", "REASON"}, rows)
	}
	for _, px := range rep.Proxies {
		fmt.Fprintf(&b, "\n%s answers every port alike (SYN proxy or tarpit): its %d open ports are not listed. %s\n",
			target.Addr(px.Addr), px.Ports, px.Reason())
	}
	if n := rep.ByKind[Expected]; n > 0 {
		fmt.Fprintf(&b, "\n%d expected %s (allowed and owned) not listed.\n", n, plural(n, "exposure", "exposures"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDiffText prints the changes between two scans: counts, then a table,
// highest severity first.
func WriteDiffText(w io.Writer, changes []Change) error {
	counts := map[Kind]int{}
	var rows [][]string
	for _, c := range changes {
		counts[c.Kind]++
		r := c.Row()
		rows = append(rows, []string{c.Severity.String(), string(c.Kind), Endpoint(r), describe(r), c.Reason})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %d new, %d changed, %d gone\n", len(changes), plural(len(changes), "change", "changes"),
		counts[New], counts[Changed], counts[Gone])
	if len(rows) > 0 {
		b.WriteString("\n")
		writeTable(&b, []string{"SEVERITY", "KIND", "ADDRESS", "SERVICE", "REASON"}, rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTable(b *strings.Builder, head []string, rows [][]string) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = safe.Terminal(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
