package target

import (
	"errors"
	"math/bits"
	"slices"
)

// Space is the scan's index space: every (address, port) pair of a Set and
// a port list, numbered 0 … Len−1 with index = addressIndex·ports + portIndex.
type Space struct {
	set    *Set
	ports  []uint16
	nports uint64
	// magic = ⌈2^64 / nports⌉; with it ⌊i / nports⌋ = hi64(i · magic) for
	// every i < 2^48 when nports < 2^16 (Lemire, Kaser, Kurz, "Faster
	// Remainder by Direct Computation", Software: Practice and Experience
	// 49(6), 2019, theorem 1 with F = 64, N = 48).
	magic uint64
}

// NewSpace pairs set with ports (sorted, distinct, non-empty; ParsePorts
// returns such a list).
func NewSpace(set *Set, ports []uint16) (*Space, error) {
	if set == nil || set.Len() == 0 {
		return nil, ErrNoTargets
	}
	if len(ports) == 0 {
		return nil, errors.New("no ports")
	}
	if !slices.IsSorted(ports) || len(slices.Compact(slices.Clone(ports))) != len(ports) {
		return nil, errors.New("ports must be sorted and distinct")
	}
	s := &Space{set: set, ports: slices.Clone(ports), nports: uint64(len(ports))}
	if s.nports > 1 {
		s.magic = ^uint64(0)/s.nports + 1
	}
	return s, nil
}

// Len is the number of (address, port) pairs: addresses × ports < 2^48.
func (s *Space) Len() uint64 { return s.set.Len() * s.nports }

// Set is the address set.
func (s *Space) Set() *Set { return s.set }

// Ports is the sorted port list.
func (s *Space) Ports() []uint16 { return s.ports }

// Pair returns the address (host order) and port of index i < Len. It
// allocates nothing and divides by no variable.
func (s *Space) Pair(i uint64) (addr uint32, port uint16) {
	if s.nports == 1 {
		return s.set.At(i), s.ports[0]
	}
	q := hi64(i, s.magic)
	return s.set.At(q), s.ports[i-q*s.nports]
}

// IndexOf is the inverse of Pair; ok is false when the pair is not in the
// space.
func (s *Space) IndexOf(addr uint32, port uint16) (i uint64, ok bool) {
	ai, ok := s.set.Index(addr)
	if !ok {
		return 0, false
	}
	pi, ok := slices.BinarySearch(s.ports, port)
	if !ok {
		return 0, false
	}
	return ai*s.nports + uint64(pi), true
}

func hi64(a, b uint64) uint64 {
	hi, _ := bits.Mul64(a, b)
	return hi
}
