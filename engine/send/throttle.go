// Package send writes probe frames to an AF_PACKET socket at a set rate from
// several sender threads.
package send

import (
	"math"
	"time"
)

// Clock is the time source of a Throttle; tests inject a fake one.
type Clock interface {
	// Now is a monotonic time in nanoseconds.
	Now() int64
	// Sleep blocks for about d nanoseconds (it may oversleep).
	Sleep(d int64)
}

type realClock struct{ base time.Time }

func (c realClock) Now() int64    { return int64(time.Since(c.base)) }
func (c realClock) Sleep(d int64) { time.Sleep(time.Duration(d)) }

// RealClock is the monotonic wall clock.
func RealClock() Clock { return realClock{base: time.Now()} }

// Throttle paces one sender thread: packets go out in batches, and before
// each batch the sender waits until the batch's first packet is due on the
// absolute schedule start + n/rate. Oversleeping is caught up by the
// following batches, so the long-run rate is exact without spinning; this is
// the batch throttling ZMap and masscan use, not a per-packet token bucket.
type Throttle struct {
	clock    Clock
	interval float64 // ns per packet; 0 means unlimited
	start    int64
	batch    int
}

// MaxBatch is the most frames a sender hands the kernel in one call.
const MaxBatch = 64

// batchTime is how much send time one batch covers at low rates: the
// sender wakes about every batchTime (200 times a second), so CPU use
// follows the rate; bursts stay below MaxBatch frames.
const batchTime = 5 * time.Millisecond

// NewThrottle paces ratePPS packets per second (fractions allowed; 0 or
// less means as fast as possible), starting now.
func NewThrottle(ratePPS float64, clock Clock) *Throttle {
	t := &Throttle{clock: clock, start: clock.Now(), batch: MaxBatch}
	if ratePPS > 0 && !math.IsInf(ratePPS, 1) {
		t.interval = 1e9 / ratePPS
		b := int(ratePPS * batchTime.Seconds())
		t.batch = min(max(b, 1), MaxBatch)
	}
	return t
}

// Batch is how many packets to send per wait.
func (t *Throttle) Batch() int { return t.batch }

// maxSleep bounds one sleep, so a sender paced at a few packets per second
// still notices a stop within this long.
const maxSleep = int64(100 * time.Millisecond)

// Wait blocks until packet number sent (counting from 0) is due, or until
// stop is closed (then it returns false).
func (t *Throttle) Wait(sent uint64, stop <-chan struct{}) bool {
	if t.interval == 0 {
		return true
	}
	due := t.start + int64(float64(sent)*t.interval)
	for {
		now := t.clock.Now()
		if now >= due {
			return true
		}
		select {
		case <-stop:
			return false
		default:
		}
		t.clock.Sleep(min(due-now, maxSleep))
	}
}

// BandwidthToRate converts a bandwidth in bit/s into packets per second for
// frames of frameLen bytes on the wire (see packet.FrameLen).
func BandwidthToRate(bitsPerSecond float64, wireLen int) float64 {
	return bitsPerSecond / float64(8*wireLen)
}
