package send

import (
	"io"
	"sync"

	"github.com/reachscan/reach/engine/packet"
)

// DryRun is a Transport that decodes every frame and writes one line per
// probe ("src:sport > dst:dport flags=S seq=… ack=0 win=… ttl=… id=…") to w
// instead of sending it. Threads share w through a lock.
type DryRun struct {
	mu   *sync.Mutex
	w    io.Writer
	bufs [][]byte
	line []byte
	r    packet.Reply
}

// NewDryRun returns a dry-run transport for frames of frameLen bytes; mu
// guards w across threads.
func NewDryRun(w io.Writer, mu *sync.Mutex, frameLen int) *DryRun {
	d := &DryRun{mu: mu, w: w, bufs: make([][]byte, MaxBatch)}
	for i := range d.bufs {
		d.bufs[i] = make([]byte, frameLen)
	}
	return d
}

// Prepare initialises every buffer.
func (d *DryRun) Prepare(init func([]byte)) {
	for _, b := range d.bufs {
		init(b)
	}
}

// Slots returns n buffers.
func (d *DryRun) Slots(n int) ([][]byte, error) { return d.bufs[:n], nil }

// Send prints the first n frames.
func (d *DryRun) Send(n int) error {
	d.line = d.line[:0]
	for _, b := range d.bufs[:n] {
		if err := packet.DecodeReply(b, &d.r); err != nil {
			d.line = append(d.line, "undecodable frame: "...)
			d.line = append(d.line, err.Error()...)
		} else {
			d.line = d.r.Describe(d.line)
		}
		d.line = append(d.line, '\n')
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.w.Write(d.line)
	return err
}

// Close does nothing.
func (d *DryRun) Close() error { return nil }
