package target

import (
	"math/bits"
	"net/netip"
	"sort"

	"go4.org/netipx"
)

// Set is an immutable set of IPv4 addresses with a dense index: At maps
// [0, Len) onto the members in ascending order and Index is its inverse.
//
// It stores the set as sorted disjoint intervals (16 bytes each) plus a
// bucket table (16 bytes per interval, rounded up to a power of two, at
// least 16 KiB) that narrows At's binary search to one interval in most
// cases, so a whole-IPv4 set with 100,000 holes costs about 4 MB and At
// stays O(1) on average.
type Set struct {
	// iv holds the intervals in ascending order and a sentinel whose cum is
	// Len. Index and first address share a cache line, so At touches one
	// line per probe of its search.
	iv     []interval
	shift  uint     // index >> shift selects a bucket
	bucket []uint32 // bucket[b] = interval holding index b<<shift; one extra sentinel
}

// minBucketBits is log2 of the smallest bucket table (16 KiB).
const minBucketBits = 12

type interval struct {
	cum   uint64 // index of first in the set
	first uint32 // first address of the interval
}

// Range is an inclusive interval of IPv4 addresses in host order.
type Range struct{ First, Last uint32 }

// NewSet builds a Set from the union of ranges (any order, overlaps allowed).
func NewSet(ranges []Range) *Set {
	var b netipx.IPSetBuilder
	for _, r := range ranges {
		b.AddRange(netipx.IPRangeFrom(Addr(r.First), Addr(r.Last)))
	}
	ips, _ := b.IPSet() // errors only for invalid ranges, which Range cannot express
	return fromIPSet(ips)
}

func fromIPSet(ips *netipx.IPSet) *Set {
	rs := ips.Ranges()
	s := &Set{iv: make([]interval, 0, len(rs)+1)}
	var n uint64
	for _, r := range rs {
		if !r.From().Is4() {
			continue
		}
		lo, hi := U32(r.From()), U32(r.To())
		s.iv = append(s.iv, interval{cum: n, first: lo})
		n += uint64(hi-lo) + 1
	}
	s.iv = append(s.iv, interval{cum: n})
	s.buildBuckets()
	return s
}

func (s *Set) buildBuckets() {
	n := s.Len()
	if n == 0 {
		return
	}
	// four buckets per interval, at least 4096: most buckets then hold one
	// interval and At needs no search at all.
	want := max(uint(bits.Len(uint(s.Intervals())))+2, minBucketBits)
	span := uint(bits.Len64(n - 1)) // bits needed for an index
	if span > want {
		s.shift = span - want
	}
	nb := ((n - 1) >> s.shift) + 1
	s.bucket = make([]uint32, nb+1)
	j := 0
	for b := range nb {
		idx := b << s.shift
		for s.iv[j+1].cum <= idx {
			j++
		}
		s.bucket[b] = uint32(j)
	}
	s.bucket[nb] = uint32(s.Intervals() - 1)
}

// Len is the number of addresses in the set (at most 2^32).
func (s *Set) Len() uint64 { return s.iv[len(s.iv)-1].cum }

// Intervals is the number of disjoint ranges the set is made of.
func (s *Set) Intervals() int { return len(s.iv) - 1 }

// At returns the i-th smallest address (0 ≤ i < Len) in host order. It
// allocates nothing; i out of range is a programming error (it panics).
func (s *Set) At(i uint64) uint32 {
	b := i >> s.shift
	lo, hi := int(s.bucket[b]), int(s.bucket[b+1])
	// find the last j in [lo, hi] with cum[j] <= i
	for lo < hi {
		mid := int(uint(lo+hi+1) >> 1)
		if s.iv[mid].cum <= i {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return s.iv[lo].first + uint32(i-s.iv[lo].cum)
}

// Index returns the position of addr in the set, or ok = false when addr is
// not a member.
func (s *Set) Index(addr uint32) (i uint64, ok bool) {
	j := sort.Search(s.Intervals(), func(k int) bool { return s.iv[k].first > addr }) - 1
	if j < 0 {
		return 0, false
	}
	off := uint64(addr - s.iv[j].first)
	if off >= s.iv[j+1].cum-s.iv[j].cum {
		return 0, false
	}
	return s.iv[j].cum + off, true
}

// Contains reports whether addr is in the set.
func (s *Set) Contains(addr uint32) bool {
	_, ok := s.Index(addr)
	return ok
}

// Ranges returns the set's disjoint intervals in ascending order.
func (s *Set) Ranges() []Range {
	out := make([]Range, s.Intervals())
	for j := range out {
		out[j] = s.interval(j)
	}
	return out
}

// Prefixes returns the set as the fewest CIDR prefixes covering it exactly.
func (s *Set) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.Ranges() {
		out = netipx.IPRangeFrom(Addr(r.First), Addr(r.Last)).AppendPrefixes(out)
	}
	return out
}

// MemoryBytes is the approximate heap size of the set's tables.
func (s *Set) MemoryBytes() int {
	return 16*cap(s.iv) + 4*cap(s.bucket)
}

// interval returns the j-th interval as a Range.
func (s *Set) interval(j int) Range {
	f := s.iv[j].first
	return Range{f, f + uint32(s.iv[j+1].cum-s.iv[j].cum-1)}
}
