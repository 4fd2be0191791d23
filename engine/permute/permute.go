package permute

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Cycle is the walk over the index space [0, N) fixed by a seed: the prime p,
// the primitive root g and the start element. It is immutable and safe for
// concurrent use; each sender thread takes its own Run from it.
type Cycle struct {
	n     uint64 // index space size
	p     uint64 // prime modulus, the smallest table prime above n
	g     uint64 // primitive root modulo p
	start uint64 // element at cycle position 0, in [1, p-1]
	pinv  uint64 // −p⁻¹ mod 2^64, for Montgomery reduction
	r2    uint64 // 2^128 mod p, to move values into Montgomery form
}

// New builds the cycle for an index space of n elements (n ≥ 1) from seed.
// The same (n, seed) always gives the same cycle. It fails for n = 0 and for
// n > MaxN.
func New(n, seed uint64) (*Cycle, error) {
	if n == 0 {
		return nil, errors.New("permute: empty index space")
	}
	gp, ok := primeAbove(n)
	if !ok {
		return nil, fmt.Errorf("permute: index space %d exceeds the maximum %d", n, uint64(MaxN))
	}
	c := &Cycle{n: n, p: gp.p}
	c.pinv = montInverse(gp.p)
	r := bits.Rem64(1, 0, gp.p) // 2^64 mod p
	hi, lo := bits.Mul64(r, r)
	c.r2 = bits.Rem64(hi, lo, gp.p)

	rng := rand.New(rand.NewChaCha8(seedKey(seed)))
	for {
		g := 2 + rng.Uint64N(gp.p-2) // p−2 ≥ 1 for every table prime
		if isPrimitiveRoot(g, gp) {
			c.g = g
			break
		}
	}
	c.start = 1 + rng.Uint64N(gp.p-1)
	return c, nil
}

// seedKey derives the 32-byte ChaCha8 key for the permutation from the scan
// seed, domain-separated from other uses of the seed (the cookie key).
func seedKey(seed uint64) [32]byte {
	var b [8 + 15]byte
	copy(b[:], "reach/permute/1")
	binary.LittleEndian.PutUint64(b[15:], seed)
	return sha256.Sum256(b[:])
}

// N is the size of the index space.
func (c *Cycle) N() uint64 { return c.n }

// Prime is the group's modulus p.
func (c *Cycle) Prime() uint64 { return c.p }

// Generator is the primitive root g.
func (c *Cycle) Generator() uint64 { return c.g }

// Start is the element at cycle position 0.
func (c *Cycle) Start() uint64 { return c.start }

// Layout says how the cycle is split: Shards hosts (or processes), this one
// being Shard (0-based), each with Threads sender threads.
type Layout struct {
	Shards  int
	Shard   int
	Threads int
}

// Layout limits.
const (
	MaxShards  = 1 << 16
	MaxThreads = 1 << 10
)

// Runs is the number of disjoint runs the whole cycle is split into (S·T).
func (l Layout) Runs() int { return l.Shards * l.Threads }

// Validate checks that the layout is usable.
func (l Layout) Validate() error {
	switch {
	case l.Shards < 1:
		return fmt.Errorf("shards must be at least 1, got %d", l.Shards)
	case l.Shard < 0 || l.Shard >= l.Shards:
		return fmt.Errorf("shard %d out of range: with %d shards it must be in [0, %d]", l.Shard, l.Shards, l.Shards-1)
	case l.Threads < 1:
		return fmt.Errorf("sender threads must be at least 1, got %d", l.Threads)
	case l.Shards > MaxShards:
		return fmt.Errorf("%d shards: at most %d", l.Shards, MaxShards)
	case l.Threads > MaxThreads:
		return fmt.Errorf("%d sender threads: at most %d", l.Threads, MaxThreads)
	}
	return nil
}

// runIndex is the global run number of thread t in this layout.
func (l Layout) runIndex(t int) uint64 { return uint64(t*l.Shards + l.Shard) }

// Position is a run's checkpoint: how many cycle positions it has consumed
// and the element at the next one. Element is redundant with Done and lets a
// resume detect a checkpoint that belongs to another seed or target set.
type Position struct {
	Done    uint64 `json:"done"`
	Element uint64 `json:"element"`
}

// Run walks one thread's share of the cycle. It is not safe for concurrent
// use; each sender thread owns one.
type Run struct {
	x         uint64 // element at the next position
	stepM     uint64 // g^R in Montgomery form
	n         uint64
	p         uint64
	pinv      uint64
	remaining uint64 // positions left
	done      uint64 // positions consumed
}

// Run returns the run of thread t (0 ≤ t < l.Threads) from its first position.
func (c *Cycle) Run(l Layout, t int) (*Run, error) {
	return c.Resume(l, t, Position{Done: 0, Element: 0})
}

// Resume returns the run of thread t continued from pos. A zero
// pos.Element is accepted only with pos.Done == 0 (a fresh run); otherwise
// pos.Element must be the element this cycle has at that position, or
// Resume fails.
func (c *Cycle) Resume(l Layout, t int, pos Position) (*Run, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("permute: %w", err)
	}
	if t < 0 || t >= l.Threads {
		return nil, fmt.Errorf("permute: thread %d out of range [0, %d)", t, l.Threads)
	}
	runs := uint64(l.Runs())
	idx := l.runIndex(t)
	total := c.runLength(idx, runs)
	if pos.Done > total {
		return nil, fmt.Errorf("permute: checkpoint position %d is past the run's end %d", pos.Done, total)
	}
	// element at position idx + done·runs
	k := (idx + pos.Done*runs) % (c.p - 1) // Done·runs < p−1+runs, no overflow below 2^63
	x := c.mulMod(c.start, c.powMod(c.g, k))
	if pos.Element != 0 || pos.Done != 0 {
		if pos.Element != x {
			return nil, fmt.Errorf("permute: checkpoint element %d does not match position %d (want %d): it belongs to another seed, target set or layout", pos.Element, pos.Done, x)
		}
	}
	step := c.powMod(c.g, runs%(c.p-1))
	return &Run{
		x:         x,
		stepM:     c.toMont(step),
		n:         c.n,
		p:         c.p,
		pinv:      c.pinv,
		remaining: total - pos.Done,
		done:      pos.Done,
	}, nil
}

// runLength is the number of cycle positions k < p−1 with k ≡ idx (mod runs).
func (c *Cycle) runLength(idx, runs uint64) uint64 {
	order := c.p - 1
	if idx >= order {
		return 0
	}
	return (order - idx + runs - 1) / runs
}

// Next returns the next index in [0, N) of the run, or ok = false when the
// run is exhausted. It allocates nothing.
func (r *Run) Next() (index uint64, ok bool) {
	for r.remaining > 0 {
		x := r.x
		hi, lo := bits.Mul64(x, r.stepM)
		r.x = redc(hi, lo, r.p, r.pinv)
		r.remaining--
		r.done++
		if x <= r.n {
			return x - 1, true
		}
	}
	return 0, false
}

// Position is the run's checkpoint after the indexes returned so far.
func (r *Run) Position() Position { return Position{Done: r.done, Element: r.x} }

// Remaining is the number of cycle positions the run has left; an upper
// bound on the indexes it will still return.
func (r *Run) Remaining() uint64 { return r.remaining }

// redc is Montgomery reduction with R = 2^64: it returns (hi·2^64 + lo)·2^−64
// mod p for an input below p·2^64.
func redc(hi, lo, p, pinv uint64) uint64 {
	m := lo * pinv
	mh, ml := bits.Mul64(m, p)
	_, carry := bits.Add64(lo, ml, 0)
	t := hi + mh + carry // < 2p < 2^50: cannot overflow
	if t >= p {
		t -= p
	}
	return t
}

// montInverse returns −p⁻¹ mod 2^64 for odd p (Newton's iteration doubles the
// correct low bits each round: 5 rounds from 3 bits reach 96).
func montInverse(p uint64) uint64 {
	inv := p // correct to 3 bits for odd p
	for range 5 {
		inv *= 2 - p*inv
	}
	return -inv
}

func (c *Cycle) toMont(x uint64) uint64 {
	hi, lo := bits.Mul64(x, c.r2)
	return redc(hi, lo, c.p, c.pinv)
}

func (c *Cycle) mulMod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return bits.Rem64(hi, lo, c.p)
}

func (c *Cycle) powMod(b, e uint64) uint64 { return powMod(b, e, c.p) }

func powMod(b, e, p uint64) uint64 {
	result := uint64(1) % p
	b %= p
	for e > 0 {
		if e&1 == 1 {
			hi, lo := bits.Mul64(result, b)
			result = bits.Rem64(hi, lo, p)
		}
		hi, lo := bits.Mul64(b, b)
		b = bits.Rem64(hi, lo, p)
		e >>= 1
	}
	return result
}

// isPrimitiveRoot reports whether g generates (Z/pZ)*: g^((p−1)/q) ≠ 1 for
// every prime factor q of p−1.
func isPrimitiveRoot(g uint64, gp groupPrime) bool {
	if g%gp.p == 0 {
		return false
	}
	for _, q := range gp.factors {
		if powMod(g, (gp.p-1)/q, gp.p) == 1 {
			return false
		}
	}
	return true
}
