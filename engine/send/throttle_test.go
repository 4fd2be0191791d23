package send

import (
	"math"
	"math/rand/v2"
	"testing"
)

// fakeClock advances only when slept on, by the requested time plus a random
// oversleep, like a real timer; it counts the sleeps.
type fakeClock struct {
	now    int64
	sleeps int
	jitter int64
	rng    *rand.Rand
}

func (c *fakeClock) Now() int64 { return c.now }
func (c *fakeClock) Sleep(d int64) {
	c.sleeps++
	c.now += d
	if c.jitter > 0 {
		c.now += c.rng.Int64N(c.jitter)
	}
}

// TestThrottleRate sends for a simulated time at rates from 0.5 pps to
// 10 Mpps, with timers that oversleep up to 200 µs, and checks the achieved
// rate is within ±2 % and that the sender slept instead of spinning.
func TestThrottleRate(t *testing.T) {
	for _, rate := range []float64{0.5, 1, 7, 100, 1000, 10_000, 123_456, 1_000_000, 10_000_000} {
		for _, jitter := range []int64{0, 200_000} {
			clk := &fakeClock{now: 5e9, jitter: jitter, rng: rand.New(rand.NewPCG(1, 2))}
			th := NewThrottle(rate, clk)
			duration := int64(math.Max(20/rate, 0.05) * 1e9) // at least 20 packets or 50 ms
			var sent uint64
			for {
				th.Wait(sent, nil)
				if clk.now-th.start >= duration {
					break
				}
				sent += uint64(th.Batch())
				clk.now += 100 // the send itself takes time
			}
			got := float64(sent) / (float64(clk.now-th.start) / 1e9)
			if math.Abs(got-rate)/rate > 0.02 && math.Abs(float64(sent)-rate*float64(duration)/1e9) > float64(th.Batch()) {
				t.Errorf("rate %g jitter %d: achieved %g pps (%d packets)", rate, jitter, got, sent)
			}
			// no busy waiting: at most one sleep per batch (and one per
			// maxSleep of a long gap)
			if clk.sleeps > int(sent)/th.Batch()+1+int(duration/maxSleep) {
				t.Errorf("rate %g: %d sleeps for %d batches", rate, clk.sleeps, int(sent)/th.Batch())
			}
		}
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
