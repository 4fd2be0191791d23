package permute

import (
	"math/big"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPrimeTable checks each table entry: p is prime, p is the smallest prime
// above 2^k, and the factors are exactly the distinct primes dividing p−1.
func TestPrimeTable(t *testing.T) {
	for i, gp := range primes {
		k := i + 1
		pow := uint64(1) << k
		if !new(big.Int).SetUint64(gp.p).ProbablyPrime(32) {
			t.Fatalf("table[%d] = %d is not prime", i, gp.p)
		}
		for q := pow + 1; q < gp.p; q++ {
			if new(big.Int).SetUint64(q).ProbablyPrime(32) {
				t.Fatalf("table[%d] = %d, but %d is a smaller prime above 2^%d", i, gp.p, q, k)
			}
		}
		rest := gp.p - 1
		for _, f := range gp.factors {
			if !new(big.Int).SetUint64(f).ProbablyPrime(32) {
				t.Fatalf("factor %d of %d−1 is not prime", f, gp.p)
			}
			if rest%f != 0 {
				t.Fatalf("%d does not divide %d−1", f, gp.p)
			}
			for rest%f == 0 {
				rest /= f
			}
		}
		if rest != 1 {
			t.Fatalf("factors of %d−1 incomplete: %d left", gp.p, rest)
		}
	}
}

// TestPrimeTableAgainstFactor compares the factorisations with coreutils
// factor(1), an independent implementation, when it is installed.
func TestPrimeTableAgainstFactor(t *testing.T) {
	if _, err := exec.LookPath("factor"); err != nil {
		t.Skip("coreutils factor not installed")
	}
	for _, gp := range primes {
		out, err := exec.Command("factor", strconv.FormatUint(gp.p-1, 10)).Output()
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, f := range strings.Fields(strings.SplitN(string(out), ":", 2)[1]) {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("factor printed %q: %v", f, err)
			}
			if !slices.Contains(got, v) {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, gp.factors) {
			t.Errorf("factors of %d−1: table %v, factor(1) %v", gp.p, gp.factors, got)
		}
	}
}

func TestMontgomery(t *testing.T) {
	for _, gp := range primes {
		c := &Cycle{p: gp.p, pinv: montInverse(gp.p)}
		if gp.p*(-c.pinv) != 1 {
			t.Fatalf("montInverse(%d) wrong", gp.p)
		}
		r := new(big.Int).Lsh(big.NewInt(1), 64)
		r2 := new(big.Int).Mod(new(big.Int).Mul(r, r), new(big.Int).SetUint64(gp.p))
		c.r2 = r2.Uint64()
		P := new(big.Int).SetUint64(gp.p)
		for _, a := range []uint64{1, 2, gp.p - 1, gp.p / 2, gp.p / 3, 12345 % gp.p} {
			for _, b := range []uint64{1, gp.p - 1, gp.p / 7, 99991 % gp.p} {
				if a == 0 || b == 0 {
					continue
				}
				hi, lo := mul64(a, c.toMont(b))
				got := redc(hi, lo, gp.p, c.pinv)
				want := new(big.Int).Mod(new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b)), P).Uint64()
				if got != want {
					t.Fatalf("p=%d: %d·%d = %d, want %d", gp.p, a, b, got, want)
				}
			}
		}
	}
}

func TestGeneratorIsPrimitive(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 255, 256, 65536, 1 << 32, 1<<48 - 1} {
		for seed := range uint64(5) {
			c, err := New(n, seed)
			if err != nil {
				t.Fatal(err)
			}
			if c.p <= n || c.start == 0 || c.start >= c.p {
				t.Fatalf("n=%d: p=%d start=%d", n, c.p, c.start)
			}
			gp, ok := primeAbove(n)
			if !ok {
				t.Fatalf("no prime above %d", n)
			}
			if !isPrimitiveRoot(c.g, gp) {
				t.Fatalf("n=%d seed=%d: %d is not a primitive root of %d", n, seed, c.g, c.p)
			}
		}
	}
	// For a small prime, a primitive root's powers must visit every element.
	for _, p := range []uint64{3, 5, 11, 17, 37, 67, 131} {
		gp, ok := primeAbove(p - 1)
		if !ok {
			t.Fatalf("no prime above %d", p-1)
		}
		for g := uint64(2); g < p; g++ {
			seen := map[uint64]bool{}
			x := uint64(1)
			for range p - 1 {
				seen[x] = true
				x = x * g % p
			}
			if full := len(seen) == int(p-1); full != isPrimitiveRoot(g, gp) {
				t.Fatalf("p=%d g=%d: cycle full=%v but isPrimitiveRoot=%v", p, g, full, !full)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(0, 1); err == nil {
		t.Error("New(0) succeeded")
	}
	if _, err := New(MaxN+1, 1); err == nil {
		t.Error("New(MaxN+1) succeeded")
	}
	if _, err := New(MaxN, 1); err != nil {
		t.Errorf("New(MaxN): %v", err)
	}
	c := mustCycle(t, 10, 1)
	for _, l := range []Layout{{0, 0, 1}, {2, 2, 1}, {2, -1, 1}, {1, 0, 0}} {
		if _, err := c.Run(l, 0); err == nil {
			t.Errorf("layout %+v accepted", l)
		}
	}
	if _, err := c.Run(Layout{1, 0, 2}, 2); err == nil {
		t.Error("thread out of range accepted")
	}
}

// drain returns every index of a run in order.
func drain(t testing.TB, r *Run) []uint64 {
	var out []uint64
	for {
		i, ok := r.Next()
		if !ok {
			return out
		}
		out = append(out, i)
	}
}

// propertyNs are the index space sizes walked completely.
func propertyNs() []uint64 {
	ns := []uint64{1, 2, 3, 7, 255, 256, 65535, 65536, 65537, 8191, 131071, 4099}
	for _, gp := range primes {
		if gp.p > 1<<18 {
			break
		}
		for _, d := range []int64{-2, -1, 0, 1} {
			if n := int64(gp.p) + d; n >= 1 {
				ns = append(ns, uint64(n))
			}
		}
	}
	return ns
}

// TestEveryIndexOnce is the central property: for every layout, the runs of
// all shards and threads are disjoint and together emit every index in
// [0, N) exactly once; a shard's set does not depend on its thread count.
func TestEveryIndexOnce(t *testing.T) {
	for _, n := range propertyNs() {
		c, err := New(n, n*7+3)
		if err != nil {
			t.Fatal(err)
		}
		maxShards, maxThreads := 5, 4
		if n > 70000 {
			maxShards, maxThreads = 2, 2
		}
		var byShardT1 [][]uint64
		for shards := 1; shards <= maxShards; shards++ {
			byShardT1 = byShardT1[:0]
			for threads := 1; threads <= maxThreads; threads++ {
				seen := make([]uint8, n)
				for s := range shards {
					var shardIdx []uint64
					for th := range threads {
						r, err := c.Run(Layout{shards, s, threads}, th)
						if err != nil {
							t.Fatal(err)
						}
						for _, i := range drain(t, r) {
							if i >= n {
								t.Fatalf("n=%d: index %d out of range", n, i)
							}
							seen[i]++
							shardIdx = append(shardIdx, i)
						}
					}
					slices.Sort(shardIdx)
					if threads == 1 {
						byShardT1 = append(byShardT1, shardIdx)
					} else if !slices.Equal(shardIdx, byShardT1[s]) {
						t.Fatalf("n=%d shards=%d: shard %d covers different indexes with %d threads than with 1", n, shards, s, threads)
					}
				}
				for i, k := range seen {
					if k != 1 {
						t.Fatalf("n=%d layout %d×%d: index %d emitted %d times", n, shards, threads, i, k)
					}
				}
			}
		}
	}
}

func TestSameSeedSameOrder(t *testing.T) {
	for _, n := range []uint64{7, 1000, 65537} {
		a := mustCycle(t, n, 42)
		b := mustCycle(t, n, 42)
		ra := mustRun(t, a, Layout{1, 0, 1}, 0)
		rb := mustRun(t, b, Layout{1, 0, 1}, 0)
		if !slices.Equal(drain(t, ra), drain(t, rb)) {
			t.Fatalf("n=%d: same seed, different order", n)
		}
		c := mustCycle(t, n, 43)
		rc := mustRun(t, c, Layout{1, 0, 1}, 0)
		ra = mustRun(t, a, Layout{1, 0, 1}, 0)
		if slices.Equal(drain(t, ra), drain(t, rc)) {
			t.Fatalf("n=%d: seeds 42 and 43 give the same order", n)
		}
	}
}

// TestResume checks that resuming from the position after every prefix of a
// run yields exactly the rest of the run.
func TestResume(t *testing.T) {
	for _, n := range []uint64{1, 2, 7, 256, 1000, 4099} {
		c := mustCycle(t, n, 9)
		for _, l := range []Layout{{1, 0, 1}, {3, 1, 2}, {5, 4, 4}} {
			for th := range l.Threads {
				r := mustRun(t, c, l, th)
				full := drain(t, r)
				r = mustRun(t, c, l, th)
				for emitted := 0; ; emitted++ {
					pos := r.Position()
					rr, err := c.Resume(l, th, pos)
					if err != nil {
						t.Fatalf("n=%d resume at %+v: %v", n, pos, err)
					}
					if rest := drain(t, rr); !slices.Equal(rest, full[emitted:]) {
						t.Fatalf("n=%d layout %+v thread %d: resume after %d gave %v, want %v", n, l, th, emitted, rest, full[emitted:])
					}
					if _, ok := r.Next(); !ok {
						break
					}
				}
			}
		}
	}
}

func TestResumeRejectsForeignCheckpoint(t *testing.T) {
	c := mustCycle(t, 1000, 1)
	r := mustRun(t, c, Layout{1, 0, 1}, 0)
	for range 10 {
		r.Next()
	}
	pos := r.Position()
	other := mustCycle(t, 1000, 2)
	if _, err := other.Resume(Layout{1, 0, 1}, 0, pos); err == nil {
		t.Error("checkpoint of seed 1 accepted by seed 2")
	}
	if _, err := c.Resume(Layout{2, 0, 1}, 0, pos); err == nil {
		t.Error("checkpoint accepted under another layout")
	}
	if _, err := c.Resume(Layout{1, 0, 1}, 0, Position{Done: 1 << 40, Element: 5}); err == nil {
		t.Error("position past the end accepted")
	}
}

// TestSkipsElementsAboveN targets ZMap's old bug with p = 2^32+15, where
// elements above 2^32 wrapped to low indexes: every element in (N, p) must be
// skipped and N itself must map to the last index.
func TestSkipsElementsAboveN(t *testing.T) {
	for _, n := range []uint64{1 << 32, 1<<32 - 1, 3 << 32, 1<<48 - 1<<16} {
		c := mustCycle(t, n, 5)
		for e := n + 1; e < c.p; e++ {
			if e == n+100_000 && c.p-e > 100_000 {
				e = c.p - 100_000 // the first and last 100,000 elements above N
			}
			r := &Run{x: e, stepM: c.toMont(c.g), n: n, p: c.p, pinv: c.pinv, remaining: 1}
			if i, ok := r.Next(); ok {
				t.Fatalf("n=%d: element %d emitted as index %d", n, e, i)
			}
		}
		r := &Run{x: n, stepM: c.toMont(c.g), n: n, p: c.p, pinv: c.pinv, remaining: 1}
		if i, ok := r.Next(); !ok || i != n-1 {
			t.Fatalf("n=%d: element N gave (%d, %v)", n, i, ok)
		}
	}
}

// TestLargeSpacesStayInRange walks windows at the start and end of every run
// for N near 2^32 and above it (multi-port scans): no index ≥ N, no repeat,
// and the run lengths add up to the group order.
func TestLargeSpacesStayInRange(t *testing.T) {
	const window = 200_000
	for _, n := range []uint64{1<<32 - 1, 1 << 32, 1<<32 + 1, 3_702_258_432 * 3, 3_702_258_432 * 65535} {
		c := mustCycle(t, n, 77)
		l := Layout{Shards: 3, Shard: 0, Threads: 2}
		var total uint64
		for s := range l.Shards {
			l.Shard = s
			for th := range l.Threads {
				r, err := c.Run(l, th)
				if err != nil {
					t.Fatal(err)
				}
				length := r.Remaining()
				total += length
				seen := map[uint64]bool{}
				check := func(r *Run) {
					for k := 0; k < window; k++ {
						i, ok := r.Next()
						if !ok {
							return
						}
						if i >= n || seen[i] {
							t.Fatalf("n=%d: index %d out of range or repeated", n, i)
						}
						seen[i] = true
					}
				}
				check(r)
				// jump to the end of the run
				done := length - window
				x := c.mulMod(c.start, c.powMod(c.g, (l.runIndex(th)+done*uint64(l.Runs()))%(c.p-1)))
				tail, err := c.Resume(l, th, Position{Done: done, Element: x})
				if err != nil {
					t.Fatal(err)
				}
				check(tail)
				if _, ok := tail.Next(); ok {
					t.Fatalf("n=%d: run did not end after its last position", n)
				}
			}
		}
		if total != c.p-1 {
			t.Fatalf("n=%d: run lengths sum to %d, want %d", n, total, c.p-1)
		}
	}
}

func mul64(a, b uint64) (uint64, uint64) {
	x := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
	lo := new(big.Int).And(x, new(big.Int).SetUint64(^uint64(0))).Uint64()
	hi := new(big.Int).Rsh(x, 64).Uint64()
	return hi, lo
}

func TestNextAllocatesNothing(t *testing.T) {
	c := mustCycle(t, 1<<32, 1)
	r := mustRun(t, c, Layout{1, 0, 1}, 0)
	if a := testing.AllocsPerRun(1000, func() { r.Next() }); a != 0 {
		t.Fatalf("Next allocates %v times", a)
	}
}

func BenchmarkNext(b *testing.B) {
	for _, n := range []uint64{1 << 32, 3_702_258_432, 3_702_258_432 * 3} {
		b.Run(strconv.FormatUint(n, 10), func(b *testing.B) {
			c := mustCycle(b, n, 1)
			r := mustRun(b, c, Layout{1, 0, 1}, 0)
			b.ReportAllocs()
			var sink uint64
			for b.Loop() {
				i, _ := r.Next()
				sink += i
			}
			_ = sink
		})
	}
}

func mustCycle(t testing.TB, n, seed uint64) *Cycle {
	t.Helper()
	c, err := New(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRun(t testing.TB, c *Cycle, l Layout, th int) *Run {
	t.Helper()
	r, err := c.Run(l, th)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
