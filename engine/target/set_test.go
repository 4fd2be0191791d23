package target

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reachscan/reach/engine/permute"
)

func mustEntries(t testing.TB, ss ...string) []Entry {
	t.Helper()
	var out []Entry
	for _, s := range ss {
		e, err := ParseEntry(s)
		if err != nil {
			t.Fatal(err)
		}
		e.Source = "test"
		out = append(out, e)
	}
	return out
}

// TestSetAgainstModel compares At, Index and Contains with a plain sorted
// slice of every member, over random sets with many small intervals.
func TestSetAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var ranges []Range
		base := uint32(rng.Uint64N(1 << 32))
		for range 1 + rng.IntN(60) {
			lo := base + uint32(rng.IntN(5000))
			if lo < base {
				continue // wrapped
			}
			hi := lo + uint32(rng.IntN(40))
			if hi < lo {
				hi = ^uint32(0)
			}
			ranges = append(ranges, Range{lo, hi})
		}
		if round == 0 {
			ranges = append(ranges, Range{0, 3}, Range{^uint32(0) - 2, ^uint32(0)}) // both ends of the space
		}
		s := NewSet(ranges)
		var model []uint32
		for _, r := range ranges {
			for a := uint64(r.First); a <= uint64(r.Last); a++ {
				model = append(model, uint32(a))
			}
		}
		slices.Sort(model)
		model = slices.Compact(model)
		if s.Len() != uint64(len(model)) {
			t.Fatalf("round %d: Len %d, want %d", round, s.Len(), len(model))
		}
		for i, a := range model {
			if got := s.At(uint64(i)); got != a {
				t.Fatalf("round %d: At(%d) = %v, want %v", round, i, Addr(got), Addr(a))
			}
			if j, ok := s.Index(a); !ok || j != uint64(i) {
				t.Fatalf("round %d: Index(%v) = %d, %v; want %d", round, Addr(a), j, ok, i)
			}
		}
		for range 500 {
			a := base + uint32(rng.IntN(6000))
			_, in := slices.BinarySearch(model, a)
			if s.Contains(a) != in {
				t.Fatalf("round %d: Contains(%v) = %v, want %v", round, Addr(a), !in, in)
			}
		}
	}
}

func TestSetWholeSpace(t *testing.T) {
	s := NewSet([]Range{{0, ^uint32(0)}})
	if s.Len() != 1<<32 || s.At(0) != 0 || s.At(1<<32-1) != ^uint32(0) || s.At(1<<31) != 1<<31 {
		t.Fatalf("whole space: Len %d", s.Len())
	}
	if p := s.Prefixes(); len(p) != 1 || p[0] != netip.MustParsePrefix("0.0.0.0/0") {
		t.Fatalf("Prefixes = %v", p)
	}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name      string
		targets   []string
		allow     []string
		block     []string
		noDefault bool
		want      []string // prefixes of the result
		err       string
	}{
		{name: "overlaps merge", targets: []string{"198.18.0.0/24", "198.18.0.128/25", "198.18.0.5", "198.18.0.250-198.18.1.3"}, noDefault: true,
			want: []string{"198.18.0.0/24", "198.18.1.0/30"}},
		{name: "blocklist wins over targets", targets: []string{"198.18.0.0/24"}, block: []string{"198.18.0.0/25"}, noDefault: true,
			want: []string{"198.18.0.128/25"}},
		{name: "blocklist wins over nested allowlist", targets: []string{"198.18.0.0/16"}, allow: []string{"198.18.4.0/24"}, block: []string{"198.18.0.0/22", "198.18.4.0/25"}, noDefault: true,
			want: []string{"198.18.4.128/25"}},
		{name: "allowlist alone is scanned", allow: []string{"198.18.8.0/30"}, noDefault: true, want: []string{"198.18.8.0/30"}},
		{name: "default blocklist", targets: []string{"9.255.255.254-10.0.0.1"}, want: []string{"9.255.255.254/31"}},
		{name: "default blocklist removes all", targets: []string{"198.18.0.0/24", "10.1.2.3"}, err: "all 257 target addresses are blocked: 10.0.0.0/8 from default blocklist (private use, RFC 1918) removed 1; 198.18.0.0/15 from default blocklist (benchmarking, RFC 2544) removed 256 (the default blocklist is lifted only by --no-default-blocklist)"},
		{name: "user blocklist removes all", targets: []string{"198.18.0.0/24"}, block: []string{"198.18.0.0/23"}, noDefault: true, err: "all 256 target addresses are blocked: 198.18.0.0/23 from test removed 256"},
		{name: "allowlist excludes all", targets: []string{"198.18.0.0/24"}, allow: []string{"198.19.0.0/24"}, noDefault: true, err: "no target is inside the allowlist"},
		{name: "no targets", err: "no targets"},
		{name: "AS without dataset", targets: []string{"AS64496"}, err: "--asn-db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Build(Spec{Targets: mustEntries(t, tt.targets...), Allow: mustEntries(t, tt.allow...), Block: mustEntries(t, tt.block...), NoDefaultBlocklist: tt.noDefault})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				if !errors.Is(err, ErrNoTargets) && !strings.Contains(tt.err, "asn-db") {
					t.Fatalf("error %v is not ErrNoTargets", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range s.Prefixes() {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultBlocklist(t *testing.T) {
	bl := DefaultBlocklist()
	if len(bl) != len(reserved) {
		t.Fatalf("%d entries, want %d", len(bl), len(reserved))
	}
	s, err := Build(Spec{Targets: mustEntries(t, "0.0.0.0/0")})
	if err != nil {
		t.Fatal(err)
	}
	// 2^32 minus the union of the registry blocks: 0/8, 10/8, 127/8 (3·2^24),
	// 100.64/10 (2^22), 169.254/16, 192.168/16 (2·2^16), 172.16/12 (2^20),
	// 198.18/15 (2^17), five /24s, 224/3 (2^29; 255.255.255.255 is inside).
	want := uint64(1<<32) - (3<<24 + 1<<22 + 2<<16 + 1<<20 + 1<<17 + 5*256 + 1<<29)
	if s.Len() != want {
		t.Fatalf("0/0 minus default blocklist has %d addresses, want %d", s.Len(), want)
	}
	for _, e := range bl {
		for _, a := range []uint32{e.First, e.Last, e.First + (e.Last-e.First)/2} {
			if s.Contains(a) {
				t.Errorf("%v from %s is in the scan set", Addr(a), e.Source)
			}
		}
	}
}

func TestSpacePairRoundTrip(t *testing.T) {
	set := NewSet([]Range{{10, 12}, {100, 100}, {1000, 1003}})
	for _, ports := range [][]uint16{{80}, {22, 80}, {1, 2, 3, 7, 65535}} {
		sp, err := NewSpace(set, ports)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[2]uint32]bool{}
		for i := range sp.Len() {
			a, p := sp.Pair(i)
			if !set.Contains(a) || !slices.Contains(ports, p) || seen[[2]uint32{a, uint32(p)}] {
				t.Fatalf("Pair(%d) = %d:%d invalid or repeated", i, a, p)
			}
			seen[[2]uint32{a, uint32(p)}] = true
			if j, ok := sp.IndexOf(a, p); !ok || j != i {
				t.Fatalf("IndexOf(Pair(%d)) = %d, %v", i, j, ok)
			}
		}
	}
}

// TestFastDivision checks Pair's multiply-shift division against the
// division operator at the edges of the 48-bit index range, for every port
// count.
func TestFastDivision(t *testing.T) {
	for d := uint64(2); d <= 65535; d++ {
		magic := ^uint64(0)/d + 1
		for _, i := range []uint64{0, 1, d - 1, d, d + 1, 1<<48 - 1, 1<<48 - d, (1<<32)*d - 1, (1 << 47) + 12345} {
			q := hi64(i, magic)
			if q != i/d {
				t.Fatalf("d=%d i=%d: %d, want %d", d, i, q, i/d)
			}
		}
	}
}

// TestNoBlockedAddressNearTwoTo32 walks the first and last pairs of every
// run of an IPv4-wide scan (default blocklist, one and three ports): no
// blocked address and no index outside the space is ever produced.
func TestNoBlockedAddressNearTwoTo32(t *testing.T) {
	set, err := Build(Spec{Targets: mustEntries(t, "0.0.0.0/0")})
	if err != nil {
		t.Fatal(err)
	}
	block := NewSet(rangesOf(DefaultBlocklist()))
	for _, ports := range [][]uint16{{443}, {22, 80, 443}} {
		sp := mustSpace(t, set, ports)
		c, err := permute.New(sp.Len(), 1)
		if err != nil {
			t.Fatal(err)
		}
		l := permute.Layout{Shards: 2, Shard: 1, Threads: 2}
		for th := range l.Threads {
			r := mustRun(t, c, l, th)
			for range 300_000 {
				i, ok := r.Next()
				if !ok {
					break
				}
				if i >= sp.Len() {
					t.Fatalf("index %d ≥ N %d", i, sp.Len())
				}
				if a, _ := sp.Pair(i); block.Contains(a) {
					t.Fatalf("blocked address %v produced", Addr(a))
				}
			}
		}
	}
}

func rangesOf(es []Entry) []Range {
	var out []Range
	for _, e := range es {
		out = append(out, Range{e.First, e.Last})
	}
	return out
}

func TestHotPathsAllocateNothing(t *testing.T) {
	set := optOutSet(t, 1000)
	sp := mustSpace(t, set, []uint16{22, 80, 443})
	var i uint64
	if a := testing.AllocsPerRun(1000, func() { i = (i + 7919) % sp.Len(); sp.Pair(i) }); a != 0 {
		t.Fatalf("Pair allocates %v", a)
	}
	if a := testing.AllocsPerRun(1000, func() { set.Index(uint32(i)) }); a != 0 {
		t.Fatalf("Index allocates %v", a)
	}
}

// optOutSet is 0.0.0.0/0 minus the default blocklist and n random /24..
// /32 opt-out entries.
func optOutSet(t testing.TB, n int) *Set {
	rng := rand.New(rand.NewPCG(3, 4))
	block := make([]Entry, 0, n)
	for range n {
		a := uint32(rng.Uint64N(1 << 32))
		bits := 24 + rng.IntN(9)
		p, err := Addr(a).Prefix(bits)
		if err != nil {
			t.Fatal(err)
		}
		first := U32(p.Addr())
		block = append(block, Entry{Source: "opt-out", Text: p.String(), First: first, Last: first | uint32(uint64(1)<<(32-bits)-1)})
	}
	s, err := Build(Spec{Targets: mustEntries(t, "0.0.0.0/0"), Block: block})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkAt(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		s := optOutSet(b, n)
		b.Run("optout="+uintStr(uint64(n)), func(b *testing.B) {
			b.ReportAllocs()
			var sink uint32
			var i uint64
			step := s.Len()/1_000_003 + 1
			for b.Loop() {
				i += step
				if i >= s.Len() {
					i -= s.Len()
				}
				sink += s.At(i)
			}
			_ = sink
		})
	}
}

// BenchmarkPermutedPairs is the scan's whole per-probe target cost: next
// permutation index and index → (address, port), IPv4-wide, one port.
func BenchmarkPermutedPairs(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		set := optOutSet(b, n)
		sp := mustSpace(b, set, []uint16{443})
		c := mustCycle(b, sp.Len(), 1)
		b.Run("optout="+uintStr(uint64(n)), func(b *testing.B) {
			r := mustRun(b, c, permute.Layout{Shards: 1, Threads: 1}, 0)
			b.ReportAllocs()
			var sink uint32
			for b.Loop() {
				i, ok := r.Next()
				if !ok {
					r = mustRun(b, c, permute.Layout{Shards: 1, Threads: 1}, 0)
					continue
				}
				a, p := sp.Pair(i)
				sink += a + uint32(p)
			}
			_ = sink
		})
	}
}

func uintStr(v uint64) string { return strconv.FormatUint(v, 10) }

// BenchmarkBuildOptOut measures building 0.0.0.0/0 minus the default
// blocklist and 100,000 opt-out entries, and the heap the finished set keeps.
func BenchmarkBuildOptOut(b *testing.B) {
	b.ReportAllocs()
	var s *Set
	for b.Loop() {
		s = optOutSet(b, 100_000)
	}
	b.ReportMetric(float64(s.MemoryBytes()), "set-bytes")
	b.ReportMetric(float64(s.Intervals()), "intervals")
}

func TestBuildBlocklist(t *testing.T) {
	bl, err := BuildBlocklist(Spec{Block: mustEntries(t, "198.51.100.7", "203.0.114.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"10.1.2.3": true, "198.18.0.1": true, "203.0.114.9": true, "8.8.8.8": false, "198.20.0.1": false} {
		if bl.Contains(U32(netip.MustParseAddr(a))) != want {
			t.Errorf("%s blocked = %v, want %v", a, !want, want)
		}
	}
	empty, err := BuildBlocklist(Spec{NoDefaultBlocklist: true})
	if err != nil || empty.Len() != 0 || empty.Contains(0x01020304) {
		t.Fatalf("empty blocklist: %v, len %d", err, empty.Len())
	}
}

func mustCycle(t testing.TB, n, seed uint64) *permute.Cycle {
	t.Helper()
	c, err := permute.New(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRun(t testing.TB, c *permute.Cycle, l permute.Layout, th int) *permute.Run {
	t.Helper()
	r, err := c.Run(l, th)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustSpace(t testing.TB, set *Set, ports []uint16) *Space {
	t.Helper()
	sp, err := NewSpace(set, ports)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
