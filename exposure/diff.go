package exposure

import (
	"fmt"
	"slices"
	"strings"

	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/fingerprint"
)

// Change is one difference between two scans of the same targets.
type Change struct {
	Kind     Kind       // New, Gone or Changed
	Old, New export.Row // the zero Row where absent (Old for New, New for Gone)
	Class    Class      // of the new row; of the old row for Gone
	Severity Severity   // the new row's severity for New and Changed; Info for Gone
	What     string     // for Changed: "version 1.22.1 → 1.24.0; certificate 3f1a9c0b7d2e → 9c0b7d2e44aa"
	Reason   string     // a sentence a reviewer understands
}

// Row is the row the change is about: the new one, or the old one when gone.
func (c Change) Row() export.Row {
	if c.Kind == Gone {
		return c.Old
	}
	return c.New
}

// Diff compares two scans of the same targets, open ports only, keyed by
// address and port. A port open in both is Changed when its service,
// product, version, TLS certificate (SHA-256 of the leaf) or, when both
// scans know it, authentication changed (or it newly answers without
// credentials); a change that only adds authentication is info. Changes are sorted by severity
// (critical first), then new, changed, gone, then address and port.
//
// A row whose grab failed on the scanning machine (grab status
// local-error), or that a grab output holds with no grab status (never
// tried: the grab was interrupted), is unknown, not a fact about the
// target: its port is neither gone nor changed. An unknown row whose port
// the scan found open is still open (New when the old scan lacked it).
func Diff(old, new []export.Row) []Change {
	type key struct {
		addr uint32
		port uint16
	}
	oldGrab, newGrab := grabbed(old), grabbed(new)
	before := map[key]export.Row{}
	for _, r := range dedup(old) {
		before[key{r.Addr, r.Port}] = r
	}
	// the pairs the new scan holds only unknown rows for
	known, unsure := map[key]bool{}, map[key]bool{}
	for _, r := range new {
		k := key{r.Addr, r.Port}
		if unknown(r, newGrab) {
			unsure[k] = true
		} else {
			known[k] = true
		}
	}
	var out []Change
	for _, n := range dedup(new) {
		k := key{n.Addr, n.Port}
		o, had := before[k]
		delete(before, k)
		a := Classify(n)
		switch {
		case !had:
			out = append(out, Change{Kind: New, New: n, Class: a.Class, Severity: a.Severity,
				Reason: "Open since the previous scan. " + a.Reason})
		case unknown(o, oldGrab) || unknown(n, newGrab):
			continue // open in both; one of them does not know what answers
		default:
			what := changed(o, n)
			if what == "" {
				continue
			}
			sev := a.Severity
			if what == "authentication none → required" {
				sev = Info // only an improvement: it now asks for credentials
			}
			out = append(out, Change{Kind: Changed, Old: o, New: n, Class: a.Class, Severity: sev, What: what,
				Reason: fmt.Sprintf("%s changed since the previous scan: %s. %s", Endpoint(n), what, a.Reason)})
		}
	}
	for k, o := range before {
		if unsure[k] && !known[k] {
			continue // the new scan could not tell
		}
		a := Classify(o)
		out = append(out, Change{Kind: Gone, Old: o, Class: a.Class, Severity: Info,
			Reason: fmt.Sprintf("%s (%s) no longer answers.", Endpoint(o), describe(o))})
	}
	slices.SortFunc(out, func(a, b Change) int {
		return order(a.Severity, a.Kind, a.Row(), b.Severity, b.Kind, b.Row())
	})
	return out
}

// localError is fingerprint.StatusLocalError as the grab_status column
// holds it.
const localError = string(fingerprint.StatusLocalError)

// grabbed reports whether rows are a grab's output: some row has a grab
// status.
func grabbed(rows []export.Row) bool {
	return slices.ContainsFunc(rows, func(r export.Row) bool { return r.GrabStatus != "" })
}

// unknown reports whether r says nothing about its target: its grab failed
// locally, or it sits in a grab output (grab) with no grab status and is
// not a closed port (closed ports are not grabbed).
func unknown(r export.Row, grab bool) bool {
	return r.GrabStatus == localError || (grab && r.GrabStatus == "" && r.Status != export.StatusClosed)
}

// changed says what differs between two rows for the same port, "" when
// nothing that matters did.
func changed(o, n export.Row) string {
	var parts []string
	field := func(name, a, b string) {
		if a != b {
			parts = append(parts, fmt.Sprintf("%s %s → %s", name, orNone(a), orNone(b)))
		}
	}
	field("service", o.Service, n.Service)
	field("product", o.Product, n.Product)
	field("version", o.Version, n.Version)
	if o.TLS.SHA256 != n.TLS.SHA256 {
		parts = append(parts, fmt.Sprintf("certificate %s → %s", short(o.TLS.SHA256), short(n.TLS.SHA256)))
	}
	// authentication: any change both scans know, and a port found open to
	// anyone where the previous scan did not know
	if o.Auth != n.Auth && n.Auth != "" && (o.Auth != "" || n.Auth == "none") {
		parts = append(parts, fmt.Sprintf("authentication %s → %s", orUnknown(o.Auth), n.Auth))
	}
	return strings.Join(parts, "; ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// short abbreviates a hex fingerprint to 12 digits, enough to tell
// certificates apart by eye.
func short(h string) string {
	if h == "" {
		return "(none)"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// describe names what answered on a row: "redis Redis 7.0.15", or
// "unidentified".
func describe(r export.Row) string {
	var parts []string
	switch {
	case r.Service == "http" && r.TLS.SHA256 != "":
		parts = append(parts, "https") // HTTP inside TLS
	case r.Service != "":
		parts = append(parts, r.Service)
	}
	if r.Product != "" && !strings.EqualFold(r.Product, r.Service) {
		parts = append(parts, r.Product)
	}
	if r.Version != "" {
		parts = append(parts, r.Version)
	}
	if len(parts) == 0 {
		return "unidentified"
	}
	return strings.Join(parts, " ")
}

// DiffFailOn reports whether a new or changed port is at severity sev or
// above. Gone ports are info.
func DiffFailOn(changes []Change, sev Severity) bool {
	for _, c := range changes {
		if c.Severity >= sev {
			return true
		}
	}
	return false
}

// ChangeRows returns the changes as rows for the export writers: the new
// row (the old one for Gone) with Class, Severity, Reason and Finding
// filled.
func ChangeRows(changes []Change) []export.Row {
	out := make([]export.Row, len(changes))
	for i, c := range changes {
		r := c.Row()
		r.Class, r.Severity, r.Reason, r.Finding = string(c.Class), c.Severity.String(), c.Reason, string(c.Kind)
		out[i] = r
	}
	return out
}
