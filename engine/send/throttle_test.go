package send

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock advances only when slept on, by the requested time plus a random
// oversleep below jitter, like a real timer; it counts the sleeps. A stall
// (the process stopped during a sleep) adds stall once, to the first sleep
// at or after stallAt.
type fakeClock struct {
	now     int64
	sleeps  int
	jitter  int64
	rng     *rand.Rand
	stallAt int64
	stall   int64
}

func (c *fakeClock) Now() int64 { return c.now }
func (c *fakeClock) Sleep(d int64) {
	c.sleeps++
	c.now += d
	if c.jitter > 0 {
		c.now += c.rng.Int64N(c.jitter)
	}
	if c.stall > 0 && c.now >= c.stallAt {
		c.now += c.stall
		c.stall = 0
	}
}

// sendTime is the time one send of a batch takes on the fake clock.
const sendTime = 100

// batchSent is one batch the simulated sender let go: when Wait returned, and
// how many packets.
type batchSent struct {
	at int64
	n  int
}

// simulate runs a sender against th on clk until end (fake ns): wait, send a
// batch, repeat. pauseAfter > 0 stops the process for pause ns after that
// many batches, between two batches.
func simulate(th *Throttle, clk *fakeClock, end int64, pauseAfter int, pause int64) []batchSent {
	var out []batchSent
	var sent uint64
	for {
		th.Wait(sent, nil)
		if clk.now >= end {
			return out
		}
		out = append(out, batchSent{clk.now, th.Batch()})
		sent += uint64(th.Batch())
		clk.now += sendTime
		if len(out) == pauseAfter {
			clk.now += pause
		}
	}
}

// dueBefore is how many packets the exact schedule of th's rate and batch
// starts before d ns: whole batches whose first packet is due before d.
func dueBefore(th *Throttle, d int64) uint64 {
	var n uint64
	for int64(float64(n)*th.interval) < d {
		n += uint64(th.Batch())
	}
	return n
}

// TestThrottleRate sends for a simulated time at rates from 0.5 pps to
// 10 Mpps and checks the count against the exact schedule: with exact timers
// every batch due before the end leaves; with timers that oversleep (by up to
// 200 µs, or half a batch interval where that is shorter, the lateness the
// throttle catches up) the same, except that the last batch may wake past the
// end. The sender must sleep instead of spinning.
func TestThrottleRate(t *testing.T) {
	for _, rate := range []float64{0.5, 1, 7, 100, 1000, 10_000, 123_456, 1_000_000, 10_000_000} {
		for _, timer := range []string{"exact", "oversleeps"} {
			clk := &fakeClock{now: 5e9, rng: rand.New(rand.NewPCG(1, 2))}
			th := NewThrottle(rate, clk)
			if timer == "oversleeps" {
				clk.jitter = min(int64(200*time.Microsecond), th.slack/2)
			}
			start := clk.now
			duration := int64(math.Max(20/rate, 0.05) * 1e9) // at least 20 packets or 50 ms
			var sent uint64
			for _, b := range simulate(th, clk, start+duration, 0, 0) {
				sent += uint64(b.n)
			}
			want := dueBefore(th, duration)
			if sent != want && (timer == "exact" || sent != want-uint64(th.Batch())) {
				t.Errorf("rate %g, %s timer: sent %d in %d ns, want %d", rate, timer, sent, duration, want)
			}
			// no busy waiting: at most one sleep per batch (and one per
			// maxSleep of a long gap)
			if clk.sleeps > int(sent)/th.Batch()+1+int(duration/maxSleep) {
				t.Errorf("rate %g: %d sleeps for %d batches", rate, clk.sleeps, int(sent)/th.Batch())
			}
		}
	}
}

// TestThrottleNoBurstAfterPause: whatever happened before (a stop between
// two batches, a stall during a sleep, a late wake-up shorter or longer than
// a batch interval), every run of batches i..j-1 holds at most
// rate·(t_j − t_i) + batch packets, so the 100 ms after a 3 s stop carry at
// most rate/10 + one batch; and the schedule restarts after the stop instead
// of losing more (the second after it carries rate packets, to one batch).
func TestThrottleNoBurstAfterPause(t *testing.T) {
	const second = int64(time.Second)
	tests := []struct {
		name       string
		rate       float64
		pauseAfter int   // batches before a stop between two batches
		pause      int64 // its length, ns
		stall      int64 // a stop during the first sleep after 1 s, ns
		jitter     int64 // timer oversleep, ns
	}{
		{name: "200 pps, 3 s stop (the reported case)", rate: 200, pauseAfter: 200, pause: 3 * second},
		{name: "200 pps, 3 s stall in a sleep", rate: 200, stall: 3 * second},
		{name: "200 pps, 3 s stop, oversleeping timer", rate: 200, pauseAfter: 200, pause: 3 * second, jitter: 2 * int64(time.Millisecond)},
		{name: "1000 pps, stop of 2.5 batch intervals", rate: 1000, pauseAfter: 100, pause: 12_500_000},
		{name: "1000 pps, stop of 0.9 batch intervals", rate: 1000, pauseAfter: 100, pause: 4_500_000},
		{name: "100 kpps, 3 s stop", rate: 100_000, pauseAfter: 1000, pause: 3 * second, jitter: 200_000},
		{name: "100 kpps, 20 ms stall in a sleep", rate: 100_000, stall: 20_000_000, jitter: 200_000},
		{name: "1 Mpps, 3 s stop", rate: 1_000_000, pauseAfter: 10_000, pause: 3 * second, jitter: 30_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{now: 5e9, jitter: tt.jitter, stall: tt.stall, rng: rand.New(rand.NewPCG(3, 4))}
			th := NewThrottle(tt.rate, clk)
			clk.stallAt = clk.now + second
			batch := th.Batch()
			runs := simulate(th, clk, clk.now+tt.pause+tt.stall+3*second, tt.pauseAfter, tt.pause)
			// max over i<j of sent(i..j-1) − rate·(t_j − t_i), in one pass:
			// with P_j the packets before batch j, it is
			// P_j − rate·t_j + max_i (rate·t_i − P_i).
			perNS := tt.rate / 1e9
			worst, best := math.Inf(-1), math.Inf(-1)
			var before float64
			for j, b := range runs {
				if j > 0 {
					if ex := before - perNS*float64(b.at) + best; ex > worst {
						worst = ex
					}
				}
				best = math.Max(best, perNS*float64(b.at)-before)
				before += float64(b.n)
			}
			if worst > float64(batch)+1e-6 {
				t.Errorf("a run of batches exceeds the rate by %.1f packets; at most one batch (%d) allowed", worst, batch)
			}
			gap := 1 // the batch after the longest gap: where the process resumed
			for j := 2; j < len(runs); j++ {
				if runs[j].at-runs[j-1].at > runs[gap].at-runs[gap-1].at {
					gap = j
				}
			}
			resumed := runs[gap].at
			var in100ms, in1s int
			for _, b := range runs[gap:] {
				if b.at < resumed+second/10 {
					in100ms += b.n
				}
				if b.at < resumed+second {
					in1s += b.n
				}
			}
			if limit := int(tt.rate/10) + batch; in100ms > limit {
				t.Errorf("%d packets in the 100 ms after resuming at %d ns; at most %d", in100ms, resumed-5e9, limit)
			}
			if want := int(tt.rate); in1s < want-batch || in1s > want+batch {
				t.Errorf("%d packets in the second after resuming; want %d ± %d", in1s, want, batch)
			}
		})
	}
}

func TestThrottleBatch(t *testing.T) {
	clk := &fakeClock{}
	for _, tt := range []struct {
		rate float64
		want int
	}{{0.5, 1}, {199, 1}, {400, 2}, {1000, 5}, {10_000, 50}, {20_000, MaxBatch}, {1e6, MaxBatch}, {0, MaxBatch}} {
		if got := NewThrottle(tt.rate, clk).Batch(); got != tt.want {
			t.Errorf("rate %g: batch %d, want %d", tt.rate, got, tt.want)
		}
	}
	th := NewThrottle(0, clk)
	th.Wait(1<<40, nil)
	if clk.sleeps != 0 {
		t.Error("unlimited throttle slept")
	}
}

// TestThrottleStops: a wait of hours returns as soon as stop closes.
func TestThrottleStops(t *testing.T) {
	clk := &fakeClock{}
	th := NewThrottle(0.0001, clk) // one packet every 10,000 s
	stop := make(chan struct{})
	close(stop)
	if th.Wait(1, stop) {
		t.Fatal("Wait returned true after stop")
	}
	if clk.now > maxSleep {
		t.Fatalf("slept %d ns before noticing stop", clk.now)
	}
}

func TestBandwidthToRate(t *testing.T) {
	// 1 Gbit/s of 54-byte SYNs: 84 bytes on the wire each → 1,488,095 pps
	if got := BandwidthToRate(1e9, 84); math.Abs(got-1488095.24) > 0.01 {
		t.Fatalf("got %f", got)
	}
}
