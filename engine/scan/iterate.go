// Package scan orchestrates a scan: it combines the target space, the
// permutation and, later, the sender and receiver.
package scan

import (
	"context"
	"fmt"

	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/target"
)

// Plan is what a scan will probe and in which order: the target space and
// the permutation of its indexes, split by layout.
type Plan struct {
	Space  *target.Space
	Cycle  *permute.Cycle
	Layout permute.Layout
	Seed   uint64
}

// NewPlan builds the permutation for space from seed and checks layout.
func NewPlan(space *target.Space, seed uint64, layout permute.Layout) (*Plan, error) {
	if err := layout.Validate(); err != nil {
		return nil, err
	}
	c, err := permute.New(space.Len(), seed)
	if err != nil {
		return nil, fmt.Errorf("build permutation: %w", err)
	}
	return &Plan{Space: space, Cycle: c, Layout: layout, Seed: seed}, nil
}

// Runs returns one fresh run per sender thread of this shard.
func (p *Plan) Runs() ([]*permute.Run, error) {
	runs := make([]*permute.Run, p.Layout.Threads)
	for t := range runs {
		r, err := p.Cycle.Run(p.Layout, t)
		if err != nil {
			return nil, err
		}
		runs[t] = r
	}
	return runs, nil
}

// Iterate calls emit for every (address, port) pair of this shard in scan
// order, taking one pair from each thread's run in turn (the order the
// sender threads would produce at equal speed). It stops early when ctx is
// done or emit returns an error, and returns that error.
func (p *Plan) Iterate(ctx context.Context, emit func(addr uint32, port uint16) error) error {
	runs, err := p.Runs()
	if err != nil {
		return err
	}
	live := len(runs)
	for n := 0; live > 0; n++ {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r := runs[n%len(runs)]
		if r == nil {
			continue
		}
		i, ok := r.Next()
		if !ok {
			runs[n%len(runs)] = nil
			live--
			continue
		}
		a, port := p.Space.Pair(i)
		if err := emit(a, port); err != nil {
			return err
		}
	}
	return nil
}

// Count returns the number of pairs this shard probes. With one shard it is
// the space's size; otherwise the shard's runs are walked (about 10 ns a
// pair).
func (p *Plan) Count(ctx context.Context) (uint64, error) {
	if p.Layout.Shards == 1 {
		return p.Space.Len(), nil
	}
	var n uint64
	err := p.Iterate(ctx, func(uint32, uint16) error { n++; return nil })
	return n, err
}
