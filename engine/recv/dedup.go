// Package recv receives replies to a scan's probes: from the XDP matcher's
// ring buffer, or from an AF_PACKET socket with a classic BPF filter where
// XDP cannot load; it validates them against the target space, removes
// duplicates and hands each hit on once.
package recv

// pageBits is the number of pairs one dedup page covers (8 KiB of bits).
const pageBits = 1 << 16

// Dedup remembers which pair indexes have been seen, one bit per pair,
// allocating 8 KiB pages only where replies arrive: a small scan stays
// small, and an IPv4-wide single-port scan never exceeds 3.7 G bits
// (442 MiB). It is not safe for concurrent use.
type Dedup struct {
	pages map[uint64]*[pageBits / 64]uint64
}

// NewDedup returns an empty set.
func NewDedup() *Dedup { return &Dedup{pages: make(map[uint64]*[pageBits / 64]uint64)} }

// Add marks index i and reports whether it was new.
func (d *Dedup) Add(i uint64) bool {
	p := d.pages[i/pageBits]
	if p == nil {
		p = new([pageBits / 64]uint64)
		d.pages[i/pageBits] = p
	}
	w, bit := (i%pageBits)/64, uint64(1)<<(i%64)
	if p[w]&bit != 0 {
		return false
	}
	p[w] |= bit
	return true
}

// Bytes is the memory held by pages.
func (d *Dedup) Bytes() int { return len(d.pages) * pageBits / 8 }
