package target

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go4.org/netipx"
)

// ASNResolver expands AS numbers into the address ranges they originate.
// An AS the resolver does not know is an error.
type ASNResolver interface {
	Resolve(asns []uint32) (map[uint32][]netipx.IPRange, error)
}

// Spec is everything that decides the scan's address set.
type Spec struct {
	// Targets are the addresses to scan. When empty, Allow is scanned.
	Targets []Entry
	// Allow, when non-empty, restricts the scan to these addresses.
	Allow []Entry
	// Block lists addresses never to scan; it beats Allow and Targets.
	Block []Entry
	// NoDefaultBlocklist lifts the built-in IANA special-purpose blocklist.
	NoDefaultBlocklist bool
	// ASN expands AS entries; needed only when an entry is an AS number.
	ASN ASNResolver
}

// ErrNoTargets is returned (wrapped) when the spec leaves nothing to scan.
var ErrNoTargets = errors.New("no targets")

// Build computes the address set of spec: (Targets ∩ Allow) − Block −
// default blocklist. When blocklists remove every target, the error names
// the entries that did, so the user sees why nothing will be sent.
func Build(spec Spec) (*Set, error) {
	if len(spec.Targets) == 0 && len(spec.Allow) == 0 {
		return nil, fmt.Errorf("%w: give addresses, CIDRs, ranges or AS numbers, or an allowlist", ErrNoTargets)
	}
	asns, err := resolveASNs(spec)
	if err != nil {
		return nil, err
	}
	targets := spec.Targets
	if len(targets) == 0 {
		targets = spec.Allow
	}
	cand, err := union(targets, asns)
	if err != nil {
		return nil, err
	}
	if len(spec.Targets) > 0 && len(spec.Allow) > 0 {
		allow, err := union(spec.Allow, asns)
		if err != nil {
			return nil, err
		}
		var b netipx.IPSetBuilder
		b.AddSet(cand)
		b.Intersect(allow)
		if cand, err = b.IPSet(); err != nil {
			return nil, fmt.Errorf("intersect targets with allowlist: %w", err)
		}
		if len(cand.Ranges()) == 0 {
			return nil, fmt.Errorf("%w: no target is inside the allowlist", ErrNoTargets)
		}
	}
	blocks := spec.Block
	if !spec.NoDefaultBlocklist {
		blocks = append(DefaultBlocklist(), blocks...)
	}
	block, err := union(blocks, asns)
	if err != nil {
		return nil, err
	}
	var b netipx.IPSetBuilder
	b.AddSet(cand)
	b.RemoveSet(block)
	final, err := b.IPSet()
	if err != nil {
		return nil, fmt.Errorf("apply blocklist: %w", err)
	}
	set := fromIPSet(final)
	if set.Len() == 0 {
		return nil, allBlocked(fromIPSet(cand), blocks, asns)
	}
	return set, nil
}

// BuildBlocklist returns the set of addresses spec never scans: its Block
// entries and, unless lifted, the default blocklist. The sender checks every
// frame against it once more before writing it.
func BuildBlocklist(spec Spec) (*Set, error) {
	blocks := spec.Block
	if !spec.NoDefaultBlocklist {
		blocks = append(DefaultBlocklist(), blocks...)
	}
	asns, err := resolveASNs(Spec{Block: blocks, ASN: spec.ASN})
	if err != nil {
		return nil, err
	}
	u, err := union(blocks, asns)
	if err != nil {
		return nil, err
	}
	return fromIPSet(u), nil
}

func resolveASNs(spec Spec) (map[uint32][]netipx.IPRange, error) {
	var want []uint32
	for _, list := range [][]Entry{spec.Targets, spec.Allow, spec.Block} {
		for _, e := range list {
			if e.IsASN && !slices.Contains(want, e.ASN) {
				want = append(want, e.ASN)
			}
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	if spec.ASN == nil {
		e := asEntry(spec, want[0])
		return nil, fmt.Errorf("%s: %s: AS numbers need an ASN dataset (--asn-db FILE)", e.Source, e.Text)
	}
	m, err := spec.ASN.Resolve(want)
	var nf interface{ MissingASNs() []uint32 }
	if errors.As(err, &nf) {
		var where []string
		for _, a := range nf.MissingASNs() {
			e := asEntry(spec, a)
			where = append(where, e.Source+": "+e.Text)
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(where, ", "), err)
	}
	if err != nil {
		return nil, fmt.Errorf("expand AS numbers: %w", err)
	}
	return m, nil
}

// asEntry returns the first entry of spec naming asn.
func asEntry(spec Spec, asn uint32) Entry {
	for _, list := range [][]Entry{spec.Targets, spec.Allow, spec.Block} {
		for _, e := range list {
			if e.IsASN && e.ASN == asn {
				return e
			}
		}
	}
	return Entry{Source: "AS list", Text: fmt.Sprintf("AS%d", asn)}
}

func union(entries []Entry, asns map[uint32][]netipx.IPRange) (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	for _, e := range entries {
		if e.IsASN {
			for _, r := range asns[e.ASN] {
				b.AddRange(r)
			}
			continue
		}
		b.AddRange(netipx.IPRangeFrom(Addr(e.First), Addr(e.Last)))
	}
	s, err := b.IPSet()
	if err != nil {
		return nil, fmt.Errorf("merge entries: %w", err)
	}
	return s, nil
}

// allBlocked explains an empty result: which blocklist entries removed how
// many of the candidate addresses.
func allBlocked(cand *Set, blocks []Entry, asns map[uint32][]netipx.IPRange) error {
	var parts []string
	for _, e := range blocks {
		ranges := []Range{{e.First, e.Last}}
		if e.IsASN {
			ranges = ranges[:0]
			for _, r := range asns[e.ASN] {
				ranges = append(ranges, Range{U32(r.From()), U32(r.To())})
			}
		}
		var n uint64
		for _, r := range ranges {
			n += cand.countIn(r)
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s from %s removed %d", e.Text, e.Source, n))
		}
	}
	hint := ""
	for _, e := range blocks {
		if strings.HasPrefix(e.Source, "default blocklist") && cand.countIn(Range{e.First, e.Last}) > 0 {
			hint = " (the default blocklist is lifted only by --no-default-blocklist)"
			break
		}
	}
	return fmt.Errorf("%w: all %d target addresses are blocked: %s%s", ErrNoTargets, cand.Len(), strings.Join(parts, "; "), hint)
}

// countIn returns how many members of s lie in r.
func (s *Set) countIn(r Range) uint64 {
	var n uint64
	for j := range s.Intervals() {
		iv := s.interval(j)
		lo, hi := max(iv.First, r.First), min(iv.Last, r.Last)
		if lo <= hi {
			n += uint64(hi-lo) + 1
		}
	}
	return n
}
