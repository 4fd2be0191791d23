package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Config holds the matcher's settings, written into its volatile const
// globals before the program is loaded.
type Config struct {
	Key0, Key1        uint64 // SipHash key of the scan's cookie (packet.Cookie.Key)
	SrcFirst, SrcLast uint32 // scan source addresses, host order, inclusive
	WindowFirst       uint16 // scan source ports
	WindowCount       uint32
	Probes            uint32 // copies per target (--probes)
	SendReset         bool   // answer each valid SYN-ACK with an RST
	// ResetPath is how SendReset answers; Load takes ResetAuto for
	// ResetXDPTX (recv.NewXDP resolves it for the interface first).
	ResetPath ResetPath
}

// ResetPath is how the matcher answers a valid SYN-ACK with an RST.
type ResetPath uint8

// The reset paths.
const (
	// ResetAuto is XDP_TX where it delivers, the kernel elsewhere.
	ResetAuto ResetPath = iota
	// ResetXDPTX rewrites the SYN-ACK into the RST in place and sends it
	// back with XDP_TX: the host's kernel never sees it.
	ResetXDPTX
	// ResetKernel passes the SYN-ACK on to the host's kernel, which
	// answers it with an RST (no socket owns a scan port).
	ResetKernel
)

func (p ResetPath) String() string {
	switch p {
	case ResetXDPTX:
		return "xdp_tx"
	case ResetKernel:
		return "kernel"
	}
	return "auto"
}

// Counter indexes: enum counter of xdp.c, as bpf2go generates it.
const (
	CounterPassed      = reachXDPCounterC_PASSED
	CounterSynAck      = reachXDPCounterC_SYNACK
	CounterRst         = reachXDPCounterC_RST
	CounterBadCookie   = reachXDPCounterC_BAD_COOKIE
	CounterMalformed   = reachXDPCounterC_MALFORMED
	CounterRingbufFull = reachXDPCounterC_RINGBUF_FULL
	CounterTX          = reachXDPCounterC_TX
	CounterResetFailed = reachXDPCounterC_RESET_FAILED
	numCounters        = reachXDPCounterC_MAX
)

// Counters are the matcher's totals over all CPUs.
type Counters struct {
	Passed, SynAck, Rst, BadCookie, Malformed, RingbufFull, TX uint64
	ResetFailed                                                uint64 // valid SYN-ACKs reported but not answered
}

// fields returns the field of c that counts each counter index.
func (c *Counters) fields() [numCounters]*uint64 {
	var f [numCounters]*uint64
	f[CounterPassed], f[CounterSynAck], f[CounterRst], f[CounterBadCookie] = &c.Passed, &c.SynAck, &c.Rst, &c.BadCookie
	f[CounterMalformed], f[CounterRingbufFull], f[CounterTX], f[CounterResetFailed] = &c.Malformed, &c.RingbufFull, &c.TX, &c.ResetFailed
	return f
}

// EventSize is the size in bytes of one ring-buffer event (struct event,
// from its bpf2go type).
const EventSize = int(unsafe.Sizeof(reachXDPEvent{}))

// Offsets of struct event's fields, from the bpf2go type, so a change to
// the C struct moves the decoder with it.
const (
	evTs     = unsafe.Offsetof(reachXDPEvent{}.Ts)
	evSaddr  = unsafe.Offsetof(reachXDPEvent{}.Saddr)
	evAck    = unsafe.Offsetof(reachXDPEvent{}.Ack)
	evSport  = unsafe.Offsetof(reachXDPEvent{}.Sport)
	evDport  = unsafe.Offsetof(reachXDPEvent{}.Dport)
	evWindow = unsafe.Offsetof(reachXDPEvent{}.Window)
	evMss    = unsafe.Offsetof(reachXDPEvent{}.Mss)
	evFlags  = unsafe.Offsetof(reachXDPEvent{}.Flags)
	evTtl    = unsafe.Offsetof(reachXDPEvent{}.Ttl)
	evDaddr  = unsafe.Offsetof(reachXDPEvent{}.Daddr)
)

// Event is a decoded ring-buffer event.
type Event struct {
	TimeNS      uint64 // bpf_ktime_get_ns at the reply
	Addr        uint32 // target address, host order
	Ack         uint32
	Sport       uint16 // target port
	Dport       uint16 // our source port
	Window, MSS uint16
	Flags, TTL  uint8
	Daddr       uint32 // our source address the reply went to, host order
}

// DecodeEvent decodes a raw event at the offsets of the bpf2go type of
// struct event (in host order: the program runs on this host; the bpfel
// objects are built for little-endian hosts). It allocates nothing.
func DecodeEvent(b []byte, e *Event) error {
	if len(b) < EventSize {
		return fmt.Errorf("event of %d bytes, want %d", len(b), EventSize)
	}
	le := binary.LittleEndian
	e.TimeNS = le.Uint64(b[evTs:])
	e.Addr = le.Uint32(b[evSaddr:])
	e.Ack = le.Uint32(b[evAck:])
	e.Sport = le.Uint16(b[evSport:])
	e.Dport = le.Uint16(b[evDport:])
	e.Window = le.Uint16(b[evWindow:])
	e.MSS = le.Uint16(b[evMss:])
	e.Flags = b[evFlags]
	e.TTL = b[evTtl]
	e.Daddr = le.Uint32(b[evDaddr:])
	return nil
}

// Matcher is the loaded XDP program and its maps.
type Matcher struct {
	objs reachXDPObjects
	link link.Link
	mode string
}

// Load loads the matcher with cfg. A verifier rejection is returned with the
// verifier's log.
func Load(cfg Config) (*Matcher, error) {
	spec, err := loadReachXDP()
	if err != nil {
		return nil, fmt.Errorf("load xdp spec: %w", err)
	}
	if cfg.WindowCount == 0 || cfg.Probes == 0 || cfg.SrcLast < cfg.SrcFirst {
		return nil, errors.New("xdp matcher: empty port window, zero probes or reversed source range")
	}
	reset := uint32(0) // send_reset in xdp.c: 0 none, 1 XDP_TX, 2 the kernel
	switch {
	case cfg.SendReset && cfg.ResetPath == ResetKernel:
		reset = 2
	case cfg.SendReset:
		reset = 1
	}
	for name, v := range map[string]any{
		"key0": cfg.Key0, "key1": cfg.Key1, "src_first": cfg.SrcFirst, "src_last": cfg.SrcLast,
		"window_first": uint32(cfg.WindowFirst), "window_count": cfg.WindowCount, "probes": cfg.Probes, "send_reset": reset,
	} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("xdp matcher: no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("xdp matcher: set %s: %w", name, err)
		}
	}
	m := &Matcher{}
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load xdp program: %+v", ve)
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	return m, nil
}

// Attach attaches the program to ifi through a bpf_link (it goes away with
// the process): driver mode when the driver has it, generic otherwise. It
// returns the mode used ("driver" or "generic").
func (m *Matcher) Attach(ifi *net.Interface) (string, error) {
	var errs []error
	for _, mode := range []struct {
		flag link.XDPAttachFlags
		name string
	}{{link.XDPDriverMode, "driver"}, {link.XDPGenericMode, "generic"}} {
		l, err := link.AttachXDP(link.XDPOptions{Program: m.objs.ReachXdp, Interface: ifi.Index, Flags: mode.flag})
		if err == nil {
			m.link, m.mode = l, mode.name
			return mode.name, nil
		}
		errs = append(errs, fmt.Errorf("%s mode: %w", mode.name, err))
	}
	return "", fmt.Errorf("attach xdp to %s: %w", ifi.Name, errors.Join(errs...))
}

// Mode is the attach mode, "" before Attach.
func (m *Matcher) Mode() string { return m.mode }

// Program is the XDP program (for BPF_PROG_TEST_RUN in tests).
func (m *Matcher) Program() *ebpf.Program { return m.objs.ReachXdp }

// Events is the ring buffer of events.
func (m *Matcher) Events() *ebpf.Map { return m.objs.Events }

// Counters sums the per-CPU counters.
func (m *Matcher) Counters() (Counters, error) {
	var c Counters
	dst := c.fields()
	for i := range uint32(numCounters) {
		var per []uint64
		if err := m.objs.Counters.Lookup(i, &per); err != nil {
			return c, fmt.Errorf("read xdp counter %d: %w", i, err)
		}
		for _, v := range per {
			*dst[i] += v
		}
	}
	return c, nil
}

// Close detaches and unloads the program.
func (m *Matcher) Close() error {
	var errs []error
	if m.link != nil {
		errs = append(errs, m.link.Close())
	}
	errs = append(errs, m.objs.Close())
	return errors.Join(errs...)
}
