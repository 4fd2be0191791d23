package exposure

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/reachscan/reach/export"
)

// Kind is what a finding or change is.
type Kind string

// The review kinds, then the diff kinds.
const (
	Unexpected Kind = "unexpected" // the governing rule does not allow this port or service
	Ownerless  Kind = "ownerless"  // allowed, but the governing rule names no owner
	Expected   Kind = "expected"   // allowed and owned

	New     Kind = "new"     // open now, not in the previous scan
	Gone    Kind = "gone"    // open in the previous scan, not now
	Changed Kind = "changed" // open in both, and what answers changed

	SynProxy Kind = "syn-proxy" // a SYN proxy or tarpit answered this port (see ProxyMinPorts)
)

// kindOrder sorts kinds within a severity: what needs action first.
var kindOrder = map[Kind]int{Unexpected: 0, Ownerless: 1, Expected: 2, New: 0, Changed: 1, Gone: 2}

// Finding is one open port judged against the policy.
type Finding struct {
	Row             export.Row
	Kind            Kind
	Class           Class
	Severity        Severity
	Unauthenticated bool   // answered without credentials
	Owner           string // the governing rule's owner
	Rule            string // the governing rule's match text, or "default"
	Note            string // the governing rule's note
	Allowed         string // what the governing rule allows, as written
	Reason          string // why the port matters and, when not expected, why it is a finding
}

// Report is the outcome of a review: findings sorted by severity (critical
// first), then kind (unexpected first), then address and port; and counts.
type Report struct {
	Findings   []Finding
	ByKind     map[Kind]int
	BySeverity map[Severity]int // over findings that are not expected
	Hosts      int              // distinct addresses with an open port, proxies left out
	// Proxies are the addresses judged SYN proxies or tarpits (address
	// order): their rows are not findings.
	Proxies []ProxyFinding
}

// ProxyFinding is one address whose every scanned port answered alike.
type ProxyFinding struct {
	Addr uint32
	Proxy
	Rows []export.Row // its open rows, port order
}

// Review judges every open row against p (nil allows nothing). Closed rows
// are not exposures and are left out. Rows for the same address and port are
// judged once.
func Review(rows []export.Row, p *Policy) Report {
	rep := Report{ByKind: map[Kind]int{}, BySeverity: map[Severity]int{}}
	hosts := map[uint32]bool{}
	open := dedup(rows)
	proxies := DetectProxies(open)
	byProxy := map[uint32]*ProxyFinding{}
	for a, px := range proxies {
		rep.Proxies = append(rep.Proxies, ProxyFinding{Addr: a, Proxy: px})
	}
	slices.SortFunc(rep.Proxies, func(a, b ProxyFinding) int { return cmp.Compare(a.Addr, b.Addr) })
	for i := range rep.Proxies {
		byProxy[rep.Proxies[i].Addr] = &rep.Proxies[i]
	}
	for _, r := range open {
		if px := byProxy[r.Addr]; px != nil {
			px.Rows = append(px.Rows, r)
			continue
		}
		a := Classify(r)
		rule := p.RuleFor(r.Addr)
		f := Finding{Row: r, Class: a.Class, Severity: a.Severity, Unauthenticated: a.Unauthenticated, Owner: rule.Owner, Rule: rule.Match, Note: rule.Note, Allowed: rule.Allow.String()}
		where := "the default rule"
		if rule.Match != "default" {
			where = "the rule for " + rule.Match
		}
		switch {
		case !rule.Allow.Allows(r):
			f.Kind = Unexpected
			f.Reason = fmt.Sprintf("%s Not allowed by %s, which allows %s.", a.Reason, where, rule.Allow)
		case rule.Owner == "":
			f.Kind = Ownerless
			f.Reason = fmt.Sprintf("%s Allowed by %s, which names no owner.", a.Reason, where)
			if near := p.NearestOwner(r.Addr); near != nil {
				w := "the default rule"
				if near.Match != "default" {
					w = "the rule for " + near.Match
				}
				f.Reason += fmt.Sprintf(" Nearest owner: %s (%s).", near.Owner, w)
			}
		default:
			f.Kind = Expected
			f.Reason = a.Reason
		}
		rep.Findings = append(rep.Findings, f)
		rep.ByKind[f.Kind]++
		if f.Kind != Expected {
			rep.BySeverity[f.Severity]++
		}
		hosts[r.Addr] = true
	}
	rep.Hosts = len(hosts)
	slices.SortFunc(rep.Findings, func(a, b Finding) int {
		return order(a.Severity, a.Kind, a.Row, b.Severity, b.Kind, b.Row)
	})
	return rep
}

func order(sa Severity, ka Kind, ra export.Row, sb Severity, kb Kind, rb export.Row) int {
	return cmp.Or(cmp.Compare(sb, sa), cmp.Compare(kindOrder[ka], kindOrder[kb]),
		cmp.Compare(ra.Addr, rb.Addr), cmp.Compare(ra.Port, rb.Port))
}

// FailOn reports whether the review has a finding that is not expected at
// severity sev or above: the exit condition of "--fail-on". Expected
// exposures are declared and owned, so they never fail a review.
func FailOn(rep Report, sev Severity) bool {
	for _, f := range rep.Findings {
		if f.Kind != Expected && f.Severity >= sev {
			return true
		}
	}
	return false
}

// Rows returns the findings as rows for the export writers, in report
// order, with Class, Severity, Owner, Reason and Finding filled; then the
// rows of SYN proxies, marked syn-proxy.
func (rep Report) Rows() []export.Row {
	out := make([]export.Row, len(rep.Findings))
	for i, f := range rep.Findings {
		r := f.Row
		r.Class, r.Severity, r.Owner, r.Reason, r.Finding = string(f.Class), f.Severity.String(), f.Owner, f.Reason, string(f.Kind)
		out[i] = r
	}
	for _, px := range rep.Proxies {
		for _, r := range px.Rows {
			r.Severity, r.Reason, r.Finding = Info.String(), px.Reason(), string(SynProxy)
			out = append(out, r)
		}
	}
	return out
}

// Reason says why an address's ports are not judged one by one.
func (px ProxyFinding) Reason() string {
	mss := "no MSS option"
	if px.MSS != 0 {
		mss = fmt.Sprintf("MSS %d", px.MSS)
	}
	return fmt.Sprintf("%d ports answered SYN-ACK with one signature (TTL %d, window %d, %s): a SYN proxy, tarpit or forging middlebox answers for this address, so an open port here says nothing about a service; grab them to see what really answers.",
		px.Ports, px.TTL, px.Window, mss)
}

// dedup keeps open rows only, one per (address, port): the one that says
// most about the service.
func dedup(rows []export.Row) []export.Row {
	type key struct {
		addr uint32
		port uint16
	}
	at := map[key]int{}
	var out []export.Row
	for _, r := range rows {
		if r.Status != export.StatusOpen {
			continue
		}
		k := key{r.Addr, r.Port}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, r)
			continue
		}
		if informative(r) > informative(out[i]) {
			out[i] = r
		}
	}
	return out
}

// informative counts what r tells about its service; a row with a grab
// outcome beats one without (or with a local failure) among equals.
func informative(r export.Row) int {
	n := 0
	if r.GrabStatus != "" && r.GrabStatus != localError {
		n++
	}
	for _, s := range []string{r.Service, r.Product, r.Version, r.Auth, r.TLS.SHA256} {
		if s != "" {
			n++
		}
	}
	return n
}
