package send

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Transport hands filled frames to the kernel. A sender thread owns one.
type Transport interface {
	// Slots returns n frame buffers (n ≤ MaxBatch) to fill. Their contents
	// persist between calls for sendmmsg and are the ring's slots for the TX
	// ring, so a sender initialises the template once per slot (Prepare).
	Slots(n int) ([][]byte, error)
	// Send hands the first n slots returned by the last Slots to the kernel.
	Send(n int) error
	// Prepare calls init once on every buffer the transport will ever return.
	Prepare(init func([]byte))
	// Close releases the socket.
	Close() error
}

// Method is a way of handing frames to the kernel.
type Method string

// The AF_PACKET send methods.
const (
	MethodSendmmsg Method = "sendmmsg"
	MethodTXRing   Method = "txring"
)

// openPacketSocket opens an AF_PACKET socket with protocol 0, so the kernel
// never queues received frames on it, bound to ifi, with qdisc bypass
// (frames go straight to the driver's transmit queue).
func openPacketSocket(ifi *net.Interface) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, &net.OpError{Op: "socket", Net: "packet", Err: err}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return -1, &net.OpError{Op: "setsockopt PACKET_QDISC_BYPASS", Net: "packet", Err: err}
	}
	sa := &unix.SockaddrLinklayer{Protocol: 0, Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, &net.OpError{Op: "bind", Net: "packet", Addr: addr(ifi.Name), Err: err}
	}
	return fd, nil
}

type addr string

func (a addr) Network() string { return "packet" }
func (a addr) String() string  { return string(a) }

// mmsgTransport sends a batch with one sendmmsg(2) call.
type mmsgTransport struct {
	fd    int
	bufs  [][]byte
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr
	drops *atomic.Uint64
}

// OpenSendmmsg opens a sendmmsg transport on ifi for frames of frameLen bytes.
// drops counts frames the kernel refused (ENOBUFS) and that were not resent.
func OpenSendmmsg(ifi *net.Interface, frameLen int, drops *atomic.Uint64) (Transport, error) {
	fd, err := openPacketSocket(ifi)
	if err != nil {
		return nil, err
	}
	t := &mmsgTransport{fd: fd, bufs: make([][]byte, MaxBatch), iovs: make([]unix.Iovec, MaxBatch), msgs: make([]unix.Mmsghdr, MaxBatch), drops: drops}
	mem := make([]byte, MaxBatch*frameLen)
	for i := range t.bufs {
		t.bufs[i] = mem[i*frameLen : (i+1)*frameLen : (i+1)*frameLen]
		t.iovs[i].Base = &t.bufs[i][0]
		t.iovs[i].SetLen(frameLen)
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.Iovlen = 1
	}
	return t, nil
}

func (t *mmsgTransport) Prepare(init func([]byte)) {
	for _, b := range t.bufs {
		init(b)
	}
}

func (t *mmsgTransport) Slots(n int) ([][]byte, error) { return t.bufs[:n], nil }

// ENOBUFS handling: how often a refused frame is retried and how long the
// sender waits before each retry.
const (
	enobufsRetries = 1000
	enobufsWait    = 20 * time.Microsecond
)

func (t *mmsgTransport) Send(n int) error {
	off, retries := 0, 0
	for off < n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.msgs[off])), uintptr(n-off), 0, 0, 0)
		switch {
		case errno == 0:
			off += int(r)
			retries = 0
		case errno == unix.EINTR || errno == unix.EAGAIN:
			runtime.Gosched()
		case errno == unix.ENOBUFS:
			// the device (or a veth peer's ring) is full: wait a little and
			// retry the frame; give up on it, counted, only after
			// enobufsRetries tries
			if retries++; retries > enobufsRetries {
				t.drops.Add(1)
				off++
				retries = 0
				continue
			}
			time.Sleep(enobufsWait)
		default:
			return &net.OpError{Op: "sendmmsg", Net: "packet", Err: errno}
		}
	}
	return nil
}

func (t *mmsgTransport) Close() error { return unix.Close(t.fd) }

// ringTransport writes frames into a PACKET_TX_RING (TPACKET_V2) shared with
// the kernel and flushes them with one send(2) per batch.
type ringTransport struct {
	fd       int
	ring     []byte
	frameSz  int // slot size in bytes
	frameLen int // probe frame length
	slots    int
	next     int // next slot to fill
	pending  []int
	views    [][]byte
}

// tpacket2DataOff is where frame data starts in a TPACKET_V2 TX slot:
// TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) (linux/if_packet.h).
const tpacket2DataOff = unix.SizeofTpacket2Hdr

// ringSlots is the TX ring size in frames per socket.
const ringSlots = 4096

// OpenTXRing opens a TX-ring transport on ifi for frames of frameLen bytes.
func OpenTXRing(ifi *net.Interface, frameLen int) (Transport, error) {
	fd, err := openPacketSocket(ifi)
	if err != nil {
		return nil, err
	}
	fail := func(op string, err error) (Transport, error) {
		unix.Close(fd)
		return nil, &net.OpError{Op: op, Net: "packet", Addr: addr(ifi.Name), Err: err}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("setsockopt PACKET_VERSION", err)
	}
	frameSz := 128
	for frameSz < tpacket2DataOff+frameLen {
		frameSz *= 2
	}
	blockSz := unix.Getpagesize()
	perBlock := blockSz / frameSz
	req := unix.TpacketReq{Block_size: uint32(blockSz), Block_nr: uint32(ringSlots / perBlock), Frame_size: uint32(frameSz), Frame_nr: uint32(ringSlots)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return fail("setsockopt PACKET_TX_RING", err)
	}
	ring, err := unix.Mmap(fd, 0, int(req.Block_size*req.Block_nr), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap tx ring", err)
	}
	return &ringTransport{fd: fd, ring: ring, frameSz: frameSz, frameLen: frameLen, slots: ringSlots, views: make([][]byte, 0, MaxBatch), pending: make([]int, 0, MaxBatch)}, nil
}

func (t *ringTransport) hdr(i int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&t.ring[i*t.frameSz]))
}

func (t *ringTransport) status(i int) *uint32 { return &t.hdr(i).Status }

func (t *ringTransport) data(i int) []byte {
	o := i*t.frameSz + tpacket2DataOff
	return t.ring[o : o+t.frameLen : o+t.frameLen]
}

func (t *ringTransport) Prepare(init func([]byte)) {
	for i := range t.slots {
		init(t.data(i))
	}
}

func (t *ringTransport) Slots(n int) ([][]byte, error) {
	t.views, t.pending = t.views[:0], t.pending[:0]
	for range n {
		i := t.next
		// wait until the kernel has sent what this slot held
		for spins := 0; atomic.LoadUint32(t.status(i)) != unix.TP_STATUS_AVAILABLE; spins++ {
			st := atomic.LoadUint32(t.status(i))
			if st&unix.TP_STATUS_WRONG_FORMAT != 0 {
				return nil, errors.New("tx ring: kernel rejected a frame (wrong format)")
			}
			if err := t.flush(); err != nil {
				return nil, err
			}
			if spins > 16 {
				pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLOUT}}
				unix.Poll(pfd, 1)
			}
		}
		t.views = append(t.views, t.data(i))
		t.pending = append(t.pending, i)
		t.next = (t.next + 1) % t.slots
	}
	return t.views, nil
}

func (t *ringTransport) Send(n int) error {
	for _, i := range t.pending[:n] {
		h := t.hdr(i)
		h.Len = uint32(t.frameLen)
		atomic.StoreUint32(&h.Status, unix.TP_STATUS_SEND_REQUEST)
	}
	return t.flush()
}

// flush asks the kernel to transmit every slot marked SEND_REQUEST.
func (t *ringTransport) flush() error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(t.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0, unix.EAGAIN, unix.ENOBUFS:
			return nil
		case unix.EINTR:
			continue
		default:
			return &net.OpError{Op: "send tx ring", Net: "packet", Err: errno}
		}
	}
}

// drainTimeout bounds how long Close waits for the kernel to send what is
// still in the ring.
const drainTimeout = time.Second

func (t *ringTransport) Close() error {
	// every slot must be sent before the ring is unmapped
	deadline := time.Now().Add(drainTimeout)
	for i := 0; i < t.slots && time.Now().Before(deadline); {
		if atomic.LoadUint32(t.status(i))&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_SENDING) == 0 {
			i++
			continue
		}
		t.flush()
		pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 1)
	}
	err := unix.Munmap(t.ring)
	if cerr := unix.Close(t.fd); err == nil {
		err = cerr
	}
	return err
}

// Open opens a transport of the given method. drops counts frames the
// kernel refused.
func Open(m Method, ifi *net.Interface, frameLen int, drops *atomic.Uint64) (Transport, error) {
	switch m {
	case MethodSendmmsg:
		return OpenSendmmsg(ifi, frameLen, drops)
	case MethodTXRing:
		return OpenTXRing(ifi, frameLen)
	}
	return nil, fmt.Errorf("send method %q: want sendmmsg or txring", m)
}
