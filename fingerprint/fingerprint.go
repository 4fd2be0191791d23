package fingerprint

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Status is the outcome of one grab, from a closed set (as in ZGrab2).
type Status string

// The statuses a Result can carry.
const (
	StatusSuccess       Status = "success"        // the service was identified
	StatusNoBanner      Status = "no-banner"      // connected, but nothing identifiable came back
	StatusTimeout       Status = "timeout"        // the overall deadline passed
	StatusRefused       Status = "refused"        // the connection was refused (RST to our SYN)
	StatusReset         Status = "reset"          // the peer reset or closed the connection mid-grab
	StatusTLSError      Status = "tls-error"      // a TLS handshake failed
	StatusProtocolError Status = "protocol-error" // the peer spoke, but not the protocol expected
	// StatusLocalError means the grab failed on this machine (out of file
	// descriptors, buffers, memory or local ports; a local firewall): it
	// says nothing about the target, which should be grabbed again.
	StatusLocalError Status = "local-error"
)

// Statuses lists every status, in the order summaries print them.
func Statuses() []Status {
	return []Status{StatusSuccess, StatusNoBanner, StatusTimeout, StatusRefused, StatusReset, StatusTLSError, StatusProtocolError, StatusLocalError}
}

// Auth says whether a service answered without credentials.
type Auth string

// The Auth values; the empty value means unknown.
const (
	AuthNone     Auth = "none"     // it answered a command or query with no credentials
	AuthRequired Auth = "required" // it asked for credentials first
)

// Target is one open (address, port) to grab from.
type Target struct {
	AddrPort netip.AddrPort
	// Hostname is sent as TLS SNI and the HTTP Host header when set.
	Hostname string
	// MaxBanner is the most bytes of the peer's data a grabber keeps or
	// reads in one go (--max-banner); grabbers use 64 KiB when it is 0.
	MaxBanner int
}

// Limit returns t.MaxBanner, or 64 KiB when it is unset.
func (t Target) Limit() int {
	if t.MaxBanner <= 0 {
		return 64 << 10
	}
	return t.MaxBanner
}

// Result is the one envelope every grab produces: target, grabber, status,
// time and error, plus protocol-typed fields. Grabbers fill Service, Product,
// Version, Banner, Auth and Details; the pool fills the rest.
type Result struct {
	Target netip.AddrPort
	Module string    // the grabber that produced it ("ssh", "http", …)
	Status Status    // "" when the target was never tried (the batch was stopped first)
	Time   time.Time // when the grab finished
	Error  string    // set when Status is not success
	// Connected reports whether any TCP connection to the target was
	// established: false with a timeout means nothing answered.
	Connected bool
	Service   string // protocol spoken ("http", "ssh", "redis", …)
	Product   string // software ("nginx", "OpenSSH", "Redis", …)
	Version   string // software version as announced ("1.22.1", "9.2p1", …)
	Banner    []byte // first bytes the service sent, at most the pool's MaxBanner
	Auth      Auth
	TLS       *TLSInfo          // set when the service spoke TLS
	Details   map[string]string // protocol details ("title", "kex", "security", …)
}

// Grabber speaks one protocol on a connection the pool dialled.
//
// Grab must return by ctx's deadline (the pool also sets it on conn), must
// not read more than maxBanner bytes per read of untrusted data it keeps, and
// returns a Result with Service set when it recognised the protocol. An error
// wrapping ErrNotRecognised means the peer does not speak it: the pool then tries the next candidate on a new
// connection. Grabbers never dial on their own.
type Grabber interface {
	// Name is the module name recorded in Result.Module.
	Name() string
	// Ports are the ports on which this grabber is tried first.
	Ports() []uint16
	// Grab speaks the protocol on conn.
	Grab(ctx context.Context, conn net.Conn, t Target) (Result, error)
}

// Greeter is implemented by grabbers of protocols in which the server speaks
// first (SSH, SMTP, FTP, MySQL, VNC, …). Greets reports whether the bytes a
// server sent unprompted look like its greeting; the pool then hands the
// grabber a connection whose reads replay those bytes first.
type Greeter interface {
	Greets(banner []byte) bool
}

// TLSInfo describes a TLS session and the certificate chain the server sent.
type TLSInfo struct {
	Version string        // "TLS 1.3"
	Cipher  string        // IANA cipher suite name
	ALPN    string        // negotiated protocol, "" when none
	Chain   []Certificate // leaf first, as sent
}

// Certificate is what a reviewer needs from one X.509 certificate.
type Certificate struct {
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	SANs       []string  `json:"sans,omitempty"` // DNS names, then IP addresses
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	SHA256     string    `json:"sha256"` // hex SHA-256 of the DER encoding
	SelfSigned bool      `json:"self_signed"`
	Expired    bool      `json:"expired"` // NotAfter was before the grab
}

// ErrNotRecognised is returned (wrapped) by a grabber whose protocol the
// peer does not speak.
var ErrNotRecognised = errors.New("protocol not recognised")

// IsLocal reports whether err (from a dial or a grab, wrapped in any way:
// *net.OpError, *os.SyscallError, fmt.Errorf) is a failure of this machine
// rather than a fact about the target: no descriptor, buffer, memory or
// local address left (socket(2), connect(2): EMFILE, ENFILE, ENOBUFS,
// ENOMEM, EADDRNOTAVAIL, EADDRINUSE), a local firewall rule or a broadcast
// address refusing the connection (EPERM, EACCES), or an address family
// this host lacks (EAFNOSUPPORT). Such a target gets StatusLocalError.
func IsLocal(err error) bool {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EADDRNOTAVAIL, syscall.EADDRINUSE,
		syscall.EPERM, syscall.EACCES, syscall.EAFNOSUPPORT:
		return true
	}
	return false
}

// StatusOf maps an error from dialling or grabbing to a Status.
func StatusOf(err error) Status {
	var ne net.Error
	switch {
	case err == nil:
		return StatusSuccess
	case IsLocal(err):
		return StatusLocalError
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return StatusTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrClosedPipe):
		return StatusReset
	case errors.Is(err, ErrNotRecognised):
		return StatusNoBanner
	}
	return StatusProtocolError
}

// Bind sets conn's deadline to ctx's and expires it at once should ctx be
// cancelled earlier, so a grabber's blocked read or write ends with its
// context. Call the returned stop when done with conn.
func Bind(ctx context.Context, conn net.Conn) (stop func() bool, err error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) }), nil
}

// Recorder passes reads through from R and keeps a copy of the first Max
// bytes read (a banner), counting every byte read in Total.
type Recorder struct {
	R     io.Reader
	Max   int
	Buf   []byte
	Total int
}

func (c *Recorder) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.Total += n
	if room := c.Max - len(c.Buf); room > 0 {
		c.Buf = append(c.Buf, p[:min(n, room)]...)
	}
	return n, err
}

// Consumed returns the kept bytes that a reader on top of c has consumed,
// given how many it still buffers (bufio.Reader.Buffered), and stops
// keeping more: the banner is what the protocol read, not what it
// read ahead.
func (c *Recorder) Consumed(buffered int) []byte {
	n := max(0, min(len(c.Buf), c.Total-buffered))
	c.Max, c.Buf = n, c.Buf[:n:n]
	return c.Buf
}

// ReadSome reads what the peer sends into buf until buf is full, the peer
// pauses for quiet, or ctx's deadline passes, and returns the bytes read. It
// never reads past len(buf), so a peer that sends megabytes costs len(buf).
// An error is returned only when nothing at all was read.
func ReadSome(ctx context.Context, conn net.Conn, buf []byte, quiet time.Duration) ([]byte, error) {
	n := 0
	for n < len(buf) {
		d := time.Now().Add(quiet)
		if n == 0 {
			d = time.Time{}
		}
		if dl, ok := ctx.Deadline(); ok && (d.IsZero() || dl.Before(d)) {
			d = dl
		}
		if err := conn.SetReadDeadline(d); err != nil {
			return buf[:n], err
		}
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			if n > 0 {
				return buf[:n], nil
			}
			return nil, err
		}
	}
	return buf[:n], nil
}

// ReadUntil reads into buf until done reports true for everything read so
// far, buf is full, or ctx's deadline passes; it is the building block for
// line and length-prefixed protocols. It returns what was read, with the
// read error when done never reported true.
func ReadUntil(ctx context.Context, conn net.Conn, buf []byte, done func([]byte) bool) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(dl); err != nil {
			return nil, err
		}
	}
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if done(buf[:n]) {
			return buf[:n], nil
		}
		if err != nil {
			return buf[:n], err
		}
	}
	return buf[:n], nil
}
