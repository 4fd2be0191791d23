package packet

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/dchest/siphash"
)

// PortWindow is the source-port range probes use: First … First+Count−1,
// Count in 1 … 65536 − First.
type PortWindow struct {
	First uint16
	Count uint32
}

// Last is the window's last port.
func (w PortWindow) Last() uint16 { return uint16(uint32(w.First) + w.Count - 1) }

// Contains reports whether port lies in the window.
func (w PortWindow) Contains(port uint16) bool {
	return port >= w.First && uint32(port-w.First) < w.Count
}

// Cookie is the stateless probe cookie: SipHash-2-4 (Aumasson and
// Bernstein, "SipHash: a fast short-input PRF", INDOCRYPT 2012) keyed with
// 128 bits derived from the scan seed, so every shard and resumed run of a
// seed agrees.
//
// For a probe from src to dst:dport, h0 = SipHash(src, dst, 0, dport)
// chooses the source port of copy k (0 ≤ k < probes) as
// First + (h0>>32 + k) mod Count, and SipHash(src, dst, sport, dport) gives
// the sequence number (low 32 bits) and the IPv4 ID (bits 32-47). A reply is
// ours when its destination port is one of those ports and its ack matches.
type Cookie struct {
	k0, k1 uint64
	tsBase uint32 // TSval at the scan's start, from the same derivation
	window PortWindow
	probes uint32
}

// NewCookie keys the cookie from seed. probes is the number of copies per
// target (--probes), at most window.Count.
func NewCookie(seed uint64, window PortWindow, probes int) (*Cookie, error) {
	if window.Count == 0 || uint32(window.First)+window.Count > 65536 {
		return nil, fmt.Errorf("source-port window %d+%d outside 1-65535", window.First, window.Count)
	}
	if window.First == 0 {
		return nil, fmt.Errorf("source-port window must not include port 0")
	}
	if probes < 1 || uint32(probes) > window.Count {
		return nil, fmt.Errorf("probes %d: must be between 1 and the source-port window size %d", probes, window.Count)
	}
	var b [8 + 14]byte
	copy(b[:], "reach/cookie/1")
	binary.LittleEndian.PutUint64(b[14:], seed)
	k := sha256.Sum256(b[:])
	return &Cookie{
		k0:     binary.LittleEndian.Uint64(k[0:]),
		k1:     binary.LittleEndian.Uint64(k[8:]),
		tsBase: binary.LittleEndian.Uint32(k[16:]),
		window: window,
		probes: uint32(probes),
	}, nil
}

// Key returns the 128-bit SipHash key as two little-endian words, for the
// XDP matcher.
func (c *Cookie) Key() (k0, k1 uint64) { return c.k0, c.k1 }

// TSval is the TCP timestamp value (RFC 7323 §5.4) of a probe sent elapsed
// nanoseconds after the scan started: a start value derived from the seed,
// so scans are not linked by a constant while the shards and resumed runs
// of one seed agree, advancing one tick per millisecond, the timestamp
// clock Linux has used since 4.13. It wraps modulo 2^32 like any TSval.
func (c *Cookie) TSval(elapsed int64) uint32 {
	return c.tsBase + uint32(elapsed/1e6)
}

// Window is the source-port window.
func (c *Cookie) Window() PortWindow { return c.window }

// Probes is the number of copies per target.
func (c *Cookie) Probes() int { return int(c.probes) }

// Hash is SipHash-2-4 over the 12-byte message src ‖ dst ‖ sport ‖ dport
// (big-endian). It allocates nothing.
func (c *Cookie) Hash(src, dst uint32, sport, dport uint16) uint64 {
	var m [12]byte
	binary.BigEndian.PutUint32(m[0:], src)
	binary.BigEndian.PutUint32(m[4:], dst)
	binary.BigEndian.PutUint16(m[8:], sport)
	binary.BigEndian.PutUint16(m[10:], dport)
	return siphash.Hash(c.k0, c.k1, m[:])
}

// portOffset is the offset into the window of copy 0's source port.
func (c *Cookie) portOffset(src, dst uint32, dport uint16) uint32 {
	return uint32(c.Hash(src, dst, 0, dport)>>32) % c.window.Count
}

// Fill sets p's source port, sequence number and IPv4 ID for copy k of the
// probe from p.Src to p.Dst:p.Dport.
func (c *Cookie) Fill(p *Probe, k int) { c.FillFrom(p, c.Offset(p), k) }

// Offset is the window offset of copy 0's source port for p's target
// (one SipHash); a sender computes it once per target, not per copy.
func (c *Cookie) Offset(p *Probe) uint32 { return c.portOffset(p.Src, p.Dst, p.Dport) }

// FillFrom is Fill with the target's Offset already known.
func (c *Cookie) FillFrom(p *Probe, offset uint32, k int) {
	off := (offset + uint32(k)) % c.window.Count
	p.Sport = uint16(uint32(c.window.First) + off)
	h := c.Hash(p.Src, p.Dst, p.Sport, p.Dport)
	p.Seq = uint32(h)
	p.IPID = uint16(h >> 32)
}

// Copy returns which probe copy (0-based) a reply that Check accepted
// answers: the position of its destination port in that target's sequence
// of source ports.
func (c *Cookie) Copy(r *Reply) int {
	off := c.portOffset(r.Dst, r.Src, r.Sport)
	return int((uint32(r.Dport-c.window.First) + c.window.Count - off) % c.window.Count)
}

// Verdict classifies a reply.
type Verdict uint8

// Reply verdicts.
const (
	NotOurs   Verdict = iota // not to a source port this scan could have used
	BadCookie                // to our port, but the ack does not match
	SynAck                   // valid SYN-ACK: the port is open
	Reset                    // valid RST: the port is closed
)

func (v Verdict) String() string {
	return [...]string{"not-ours", "bad-cookie", "syn-ack", "rst"}[v]
}

// Check validates a decoded reply against the cookie: its destination port
// must be one of the probe copies' source ports (window wrap included), a
// SYN-ACK must acknowledge seq+1, and an RST must carry ack seq or seq+1.
// It allocates nothing.
func (c *Cookie) Check(r *Reply) Verdict {
	if !c.window.Contains(r.Dport) {
		return NotOurs
	}
	// the reply goes from target (r.Src:r.Sport) back to us (r.Dst:r.Dport)
	off := c.portOffset(r.Dst, r.Src, r.Sport)
	k := (uint32(r.Dport-c.window.First) + c.window.Count - off) % c.window.Count
	if k >= c.probes {
		return BadCookie
	}
	seq := uint32(c.Hash(r.Dst, r.Src, r.Dport, r.Sport))
	switch {
	case r.Flags&(FlagSYN|FlagACK|FlagRST) == FlagSYN|FlagACK:
		if r.Ack == seq+1 {
			return SynAck
		}
	case r.Flags&FlagRST != 0:
		// RFC 9293 §3.10.7.1: the RST answering a SYN acknowledges seq+1;
		// some stacks echo seq itself.
		if r.Ack == seq+1 || r.Ack == seq {
			return Reset
		}
	}
	return BadCookie
}
