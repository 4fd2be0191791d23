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
// schedule start + n/rate. A wake-up that comes late by up to one batch
// interval (a timer's oversleep) is caught up by the following batches, so
// the long-run rate is exact without spinning; a longer delay (the process
// was stopped, the VM stalled) is forgiven, not caught up: the schedule
// restarts at the late batch. So whatever happened before, the packets of
// any run of batches never exceed --rate over the time from the run's first
// send to the send after it by more than one batch:
//
//	sent(batches i..j-1) ≤ rate·(t_j − t_i) + batch.
//
// This is the batch throttling ZMap and masscan use with a burst tolerance
// of one batch (the GCRA of ITU-T I.371), not a per-packet token bucket.
type Throttle struct {
	clock    Clock
	interval float64 // ns per packet; 0 means unlimited
	start    int64   // when packet 0 is due; moved forward by a forgiven delay
	slack    int64   // the lateness still caught up: one batch interval, ns (≥ 256 µs at the CLI's ≤ 250 kpps a thread, above clock_nanosleep's usual oversleep)
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
		t.slack = int64(float64(t.batch) * t.interval)
	}
	return t
}

// Batch is how many packets to send per wait.
func (t *Throttle) Batch() int { return t.batch }

// maxSleep bounds one sleep, so a sender paced at a few packets per second
// still notices a stop within this long.
const maxSleep = int64(100 * time.Millisecond)

// Wait blocks until packet number sent (counting from 0) is due, or until
// stop is closed (then it returns false). When packet sent is more than one
// batch interval overdue, the schedule restarts with it due now.
func (t *Throttle) Wait(sent uint64, stop <-chan struct{}) bool {
	if t.interval == 0 {
		return true
	}
	offset := int64(float64(sent) * t.interval)
	due := t.start + offset
	for {
		now := t.clock.Now()
		if now >= due {
			if now-due > t.slack {
				t.start = now - offset
			}
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
