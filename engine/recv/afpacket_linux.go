package recv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	rpacket "github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/target"
)

// AFPacket receives replies on an AF_PACKET socket whose classic BPF filter
// (attached before bind, so nothing else is ever queued) passes only
// unfragmented TCP/IPv4 to a scan source address and port with SYN+ACK or
// RST set; the cookie is checked in Go. Unlike the XDP path, the host's
// kernel also sees these replies and answers SYN-ACKs with RSTs.
type AFPacket struct {
	conn   *packet.Conn
	cookie *rpacket.Cookie
	f      *filter
	stats  Stats
	ready  chan struct{}
}

// FilterConfig is what the classic BPF filter matches.
type FilterConfig struct {
	SrcFirst, SrcLast uint32 // scan source addresses, host order
	Window            rpacket.PortWindow
}

// Filter assembles the classic BPF program for cfg (untagged Ethernet; the
// kernel strips VLAN tags before AF_PACKET sees a frame). Each jump skips to
// instruction 17 (accept) or 18 (reject).
func Filter(cfg FilterConfig) ([]bpf.RawInstruction, error) {
	last := uint32(cfg.Window.Last())
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 16},
		/* 2 */ bpf.LoadAbsolute{Off: 23, Size: 1},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 14},
		/* 4 */ bpf.LoadAbsolute{Off: 30, Size: 4},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: cfg.SrcFirst, SkipFalse: 12},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: cfg.SrcLast, SkipTrue: 11},
		/* 7 */ bpf.LoadAbsolute{Off: 20, Size: 2},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 9},
		/* 9 */ bpf.LoadMemShift{Off: 14},
		/* 10 */ bpf.LoadIndirect{Off: 16, Size: 2},
		/* 11 */ bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(cfg.Window.First), SkipFalse: 6},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: last, SkipTrue: 5},
		/* 13 */ bpf.LoadIndirect{Off: 27, Size: 1},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: rpacket.FlagRST, SkipTrue: 2},
		/* 15 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: rpacket.FlagSYN | rpacket.FlagACK},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: rpacket.FlagSYN | rpacket.FlagACK, SkipFalse: 1},
		/* 17 */ bpf.RetConstant{Val: 0xffff},
		/* 18 */ bpf.RetConstant{Val: 0},
	}
	return bpf.Assemble(prog)
}

// NewAFPacket opens the fallback receiver on ifi. It refuses an interface
// where another reach scan's XDP matcher is attached (ErrInterfaceBusy):
// that matcher would drop every reply before the socket saw it.
func NewAFPacket(ifi *net.Interface, fc FilterConfig, cookie *rpacket.Cookie, space *target.Space) (*AFPacket, error) {
	if _, err := CheckInterface(ifi); err != nil {
		return nil, err
	}
	raw, err := Filter(fc)
	if err != nil {
		return nil, fmt.Errorf("assemble receive filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, &packet.Config{Filter: raw})
	if err != nil {
		return nil, fmt.Errorf("open AF_PACKET receiver on %s: %w", ifi.Name, err)
	}
	if err := setReadBuffer(conn, readBufferBytes); err != nil {
		conn.Close()
		return nil, err
	}
	a := &AFPacket{conn: conn, cookie: cookie, ready: make(chan struct{})}
	a.f = newFilter(space, &a.stats)
	return a, nil
}

// readBufferBytes is the receive buffer asked for: bursts of replies at
// high rates overflow the default ~200 KiB.
const readBufferBytes = 64 << 20

// setReadBuffer sets SO_RCVBUFFORCE (root may exceed net.core.rmem_max),
// falling back to SO_RCVBUF.
func setReadBuffer(c *packet.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set AF_PACKET receive buffer: %w", err)
	}
	return nil
}

// Ready is closed when the socket is bound with its filter.
func (a *AFPacket) Ready() <-chan struct{} { return a.ready }

// Stats are the receiver's counters.
func (a *AFPacket) Stats() *Stats { return &a.stats }

// Mode is "afpacket".
func (a *AFPacket) Mode() string { return "afpacket" }

// Run reads frames until ctx ends.
func (a *AFPacket) Run(ctx context.Context, emit func(*Hit)) error {
	close(a.ready)
	// block in the kernel between frames; ending ctx wakes the read
	stop := context.AfterFunc(ctx, func() { a.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 2048)
	var r rpacket.Reply
	var hit Hit
	for {
		n, _, err := a.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("read AF_PACKET: %w", err)
		}
		if rpacket.DecodeReply(buf[:n], &r) != nil {
			continue
		}
		switch a.cookie.Check(&r) {
		case rpacket.SynAck, rpacket.Reset:
		default:
			a.stats.BadCookie.Add(1)
			continue
		}
		st, ok := a.f.accept(r.Src, r.Sport, r.Flags)
		if !ok {
			continue
		}
		hit = Hit{Addr: r.Src, Port: r.Sport, Status: st, TTL: r.TTL, Window: r.Window, MSS: r.MSS,
			Probe: uint8(a.cookie.Copy(&r)), Time: time.Now()}
		emit(&hit)
	}
}

// Close records the kernel's drop count and closes the socket.
func (a *AFPacket) Close() error {
	if s, err := a.conn.Stats(); err == nil {
		a.stats.Dropped.Add(uint64(s.Drops))
	}
	return a.conn.Close()
}
