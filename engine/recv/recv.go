package recv

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/target"
)

// Status is a hit's outcome.
type Status uint8

// Statuses.
const (
	Open   Status = iota + 1 // SYN-ACK
	Closed                   // RST
)

func (s Status) String() string {
	switch s {
	case Open:
		return "open"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// Hit is one validated, first-seen reply.
type Hit struct {
	Addr   uint32 // target address, host order
	Port   uint16 // target port
	Status Status
	TTL    uint8
	Window uint16
	MSS    uint16
	Probe  uint8     // which probe copy was answered
	Time   time.Time // when the reply arrived
}

// Stats are a receiver's counters, safe to read while it runs.
type Stats struct {
	Replies    atomic.Uint64 // valid replies, duplicates included
	Open       atomic.Uint64 // first-seen SYN-ACKs
	Closed     atomic.Uint64 // first-seen RSTs
	Duplicates atomic.Uint64 // repeated replies for a pair already reported
	Foreign    atomic.Uint64 // replies from an address or port not targeted, or from 0.0.0.0
	BadCookie  atomic.Uint64 // replies whose cookie failed in Go (AF_PACKET path)
	Dropped    atomic.Uint64 // events lost before user space (ring buffer full, socket drops)
}

// Receiver delivers hits until its context ends.
type Receiver interface {
	// Run reads replies and calls emit once per new hit until ctx is done.
	// Ready is closed once it is attached and reading.
	Run(ctx context.Context, emit func(*Hit)) error
	Ready() <-chan struct{}
	Stats() *Stats
	// Mode names the receiver for status and metadata ("xdp/driver",
	// "xdp/generic", "afpacket").
	Mode() string
	Close() error
}

// filter is the Go side of validation shared by both receivers: the reply
// must come from a targeted address and port, and each pair is reported
// once.
type filter struct {
	space *target.Space
	dedup *Dedup
	stats *Stats
}

func newFilter(space *target.Space, stats *Stats) *filter {
	return &filter{space: space, dedup: NewDedup(), stats: stats}
}

// accept validates a matched reply and returns whether it is a new hit.
func (f *filter) accept(addr uint32, port uint16, flags uint8) (Status, bool) {
	f.stats.Replies.Add(1)
	idx, ok := f.space.IndexOf(addr, port)
	if !ok || addr == 0 {
		f.stats.Foreign.Add(1)
		return 0, false
	}
	st := Closed
	if flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK && flags&packet.FlagRST == 0 {
		st = Open
	}
	if !f.dedup.Add(idx) {
		f.stats.Duplicates.Add(1)
		return 0, false
	}
	if st == Open {
		f.stats.Open.Add(1)
	} else {
		f.stats.Closed.Add(1)
	}
	return st, true
}
