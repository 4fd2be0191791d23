package scan

import (
	"context"
	"errors"
	"testing"

	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/target"
)

func space(t *testing.T) *target.Space {
	t.Helper()
	set := target.NewSet([]target.Range{{First: 0xC6120000, Last: 0xC61200FF}, {First: 0xC6130010, Last: 0xC6130013}})
	sp, err := target.NewSpace(set, []uint16{22, 80, 443})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestIterateShardsCoverSpace checks that the shards of a plan together emit
// every pair once, whatever the thread count, and that Count agrees.
func TestIterateShardsCoverSpace(t *testing.T) {
	sp := space(t)
	for _, shards := range []int{1, 2, 3} {
		for _, threads := range []int{1, 4} {
			seen := map[[2]uint32]int{}
			for s := range shards {
				p, err := NewPlan(sp, 99, permute.Layout{Shards: shards, Shard: s, Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				var n uint64
				if err := p.Iterate(context.Background(), func(a uint32, port uint16) error {
					seen[[2]uint32{a, uint32(port)}]++
					n++
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if c, err := p.Count(context.Background()); err != nil || c != n {
					t.Fatalf("shard %d/%d: Count %d (%v), iterated %d", s, shards, c, err, n)
				}
			}
			if uint64(len(seen)) != sp.Len() {
				t.Fatalf("%d shards × %d threads: %d distinct pairs, want %d", shards, threads, len(seen), sp.Len())
			}
			for k, v := range seen {
				if v != 1 {
					t.Fatalf("pair %v emitted %d times", k, v)
				}
			}
		}
	}
}

func TestIterateStops(t *testing.T) {
	p, err := NewPlan(space(t), 1, permute.Layout{Shards: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	err = p.Iterate(context.Background(), func(uint32, uint16) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Fatalf("err %v after %d pairs", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Iterate(ctx, func(uint32, uint16) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled iterate returned %v", err)
	}
}
