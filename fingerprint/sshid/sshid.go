// Package sshid identifies SSH servers: the identification string
// (RFC 4253 §4.2), the server's key exchange offer (its SSH_MSG_KEXINIT,
// §7.1) and its host key.
//
// The grabber reads the identification string, then runs a key exchange
// with golang.org/x/crypto/ssh up to the point where the server has proved
// it holds its host key, records the key and aborts before authentication.
//
// Details keys:
//
//	proto               protocol version of the identification ("2.0")
//	comments            comments after the software version ("Debian-2+deb12u3")
//	kex                 the server's kex_algorithms name-list, comma-joined
//	hostkey_algorithms  the server's server_host_key_algorithms, comma-joined
//	hostkey_type        the host key's type ("ssh-ed25519")
//	hostkey_sha256      its fingerprint as OpenSSH prints it ("SHA256:…")
//
// Auth is left unknown: the methods a server accepts are only known after
// trying them.
package sshid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/reachscan/reach/fingerprint"
	"golang.org/x/crypto/ssh"
)

// maxIdent is the longest identification line, CR LF included, in bytes
// (RFC 4253 §4.2).
const maxIdent = 255

// maxPacket is the largest binary packet read for the server's KEXINIT, in
// bytes (RFC 4253 §6.1: implementations must handle 35000).
const maxPacket = 35000

// msgKexInit is SSH_MSG_KEXINIT (RFC 4253 §12).
const msgKexInit = 20

// Grabber is the SSH grabber. The zero value is ready to use.
type Grabber struct{}

// New returns an SSH grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "ssh".
func (*Grabber) Name() string { return "ssh" }

// Ports returns 22 and 2222.
func (*Grabber) Ports() []uint16 { return []uint16{22, 2222} }

// Greets reports whether banner starts with an SSH identification line, or
// has one after other lines (RFC 4253 §4.2 allows a server to send lines
// before it).
func (*Grabber) Greets(banner []byte) bool {
	return bytes.HasPrefix(banner, []byte("SSH-")) || bytes.Contains(banner, []byte("\nSSH-"))
}

// Ident is a parsed identification string
// "SSH-protoversion-softwareversion SP comments".
type Ident struct {
	Proto    string // "2.0"
	Software string // "OpenSSH_9.2p1"
	Comments string // "Debian-2+deb12u3"
	Product  string // "OpenSSH"
	Version  string // "9.2p1"
}

// ParseIdent parses one identification line, with or without its CR LF.
func ParseIdent(line []byte) (Ident, error) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	rest, ok := strings.CutPrefix(s, "SSH-")
	if !ok {
		return Ident{}, errors.New("identification does not start with SSH-")
	}
	proto, rest, ok := strings.Cut(rest, "-")
	if !ok || proto == "" {
		return Ident{}, errors.New("identification has no protocol version")
	}
	var id Ident
	id.Proto = proto
	id.Software, id.Comments, _ = strings.Cut(rest, " ")
	id.Product, id.Version = splitSoftware(id.Software)
	return id, nil
}

// canonical maps lower-case product names to the spelling the projects use.
var canonical = map[string]string{
	"dropbear": "Dropbear",
	"openssh":  "OpenSSH",
	"libssh":   "libssh",
}

// splitSoftware splits a softwareversion at the first '_' or '-' followed
// by a digit: "OpenSSH_9.2p1" gives OpenSSH and 9.2p1, "dropbear_2022.83"
// gives Dropbear and 2022.83, "mod_sftp" gives itself and no version.
func splitSoftware(sw string) (product, version string) {
	for i := 0; i+1 < len(sw); i++ {
		if (sw[i] == '_' || sw[i] == '-') && sw[i+1] >= '0' && sw[i+1] <= '9' {
			product, version = sw[:i], sw[i+1:]
			break
		}
	}
	if product == "" && version == "" {
		product = sw
	}
	if c, ok := canonical[strings.ToLower(product)]; ok {
		product = c
	}
	return product, version
}

// KexInit is the part of an SSH_MSG_KEXINIT (RFC 4253 §7.1) this package
// records.
type KexInit struct {
	Kex     []string // kex_algorithms
	HostKey []string // server_host_key_algorithms
}

// ParseKexInit parses the first binary packet (RFC 4253 §6) of b, which
// must be an unencrypted SSH_MSG_KEXINIT.
func ParseKexInit(b []byte) (KexInit, error) {
	if len(b) < 5 {
		return KexInit{}, errors.New("kexinit: short packet header")
	}
	plen := binary.BigEndian.Uint32(b)
	pad := uint32(b[4])
	if plen > maxPacket || plen < pad+1 || uint32(len(b)-4) < plen {
		return KexInit{}, fmt.Errorf("kexinit: bad packet length %d (padding %d, have %d)", plen, pad, len(b)-4)
	}
	payload := b[5 : 4+plen-pad]
	if len(payload) < 1+16 || payload[0] != msgKexInit {
		return KexInit{}, errors.New("kexinit: not an SSH_MSG_KEXINIT")
	}
	p := payload[1+16:] // message number, then a 16-byte cookie
	var k KexInit
	var err error
	if k.Kex, p, err = nameList(p); err != nil {
		return KexInit{}, fmt.Errorf("kexinit: kex_algorithms: %w", err)
	}
	if k.HostKey, _, err = nameList(p); err != nil {
		return KexInit{}, fmt.Errorf("kexinit: server_host_key_algorithms: %w", err)
	}
	return k, nil
}

// nameList reads one name-list (RFC 4251 §5) off the front of b.
func nameList(b []byte) ([]string, []byte, error) {
	if len(b) < 4 {
		return nil, nil, errors.New("short length")
	}
	n := binary.BigEndian.Uint32(b)
	if uint32(len(b)-4) < n {
		return nil, nil, fmt.Errorf("length %d past the packet", n)
	}
	s := string(b[4 : 4+n])
	if s == "" {
		return nil, b[4+n:], nil
	}
	return strings.Split(s, ","), b[4+n:], nil
}

// errDone stops the handshake once the host key is known.
var errDone = errors.New("host key recorded")

// Grab reads the identification, then runs a key exchange to record the
// server's algorithms and host key.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	stop, err := fingerprint.Bind(ctx, conn)
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("ssh: set deadline: %w", err)
	}
	defer stop()

	raw, start, end, err := readIdent(ctx, conn, max(t.Limit(), maxIdent))
	cut := start < 0 && err != nil && bytes.HasPrefix(raw, []byte("SSH-"))
	if cut {
		// The line was cut short (by the deadline or the peer): it still
		// says SSH, and what it holds of the software version.
		start, end = 0, len(raw)
	}
	if start < 0 {
		if err != nil && len(raw) == 0 {
			return fingerprint.Result{}, fmt.Errorf("ssh: read identification: %w", err)
		}
		return fingerprint.Result{}, fmt.Errorf("ssh: read identification: %w", fingerprint.ErrNotRecognised)
	}
	id, err := ParseIdent(raw[start:end])
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("ssh: %w: %w", fingerprint.ErrNotRecognised, err)
	}
	res := fingerprint.Result{
		Service: "ssh",
		Product: id.Product,
		Version: id.Version,
		Banner:  bytes.Clone(raw[:min(end, t.Limit())]),
		Details: map[string]string{"proto": id.Proto},
	}
	if id.Comments != "" {
		res.Details["comments"] = id.Comments
	}
	if cut {
		return res, fmt.Errorf("ssh: read identification: %w", err)
	}
	if id.Proto != "2.0" && id.Proto != "1.99" {
		return res, nil // SSH-1 only: no SSH-2 key exchange to run
	}
	if err := exchange(conn, t, raw[start:], end-start, &res); err != nil {
		return res, fmt.Errorf("ssh: key exchange: %w", err)
	}
	return res, nil
}

// readIdent reads until a complete line starting with "SSH-" arrives, at
// most limit bytes, and returns what was read and the bounds of that line
// (start is -1 when there is none).
func readIdent(ctx context.Context, conn net.Conn, limit int) (raw []byte, start, end int, err error) {
	find := func(b []byte) (int, int) {
		for off := 0; off < len(b); {
			nl := bytes.IndexByte(b[off:], '\n')
			if nl < 0 {
				return -1, -1
			}
			if bytes.HasPrefix(b[off:], []byte("SSH-")) {
				return off, off + nl + 1
			}
			off += nl + 1
		}
		return -1, -1
	}
	raw, err = fingerprint.ReadUntil(ctx, conn, make([]byte, limit), func(b []byte) bool {
		s, _ := find(b)
		return s >= 0
	})
	start, end = find(raw)
	return raw, start, end, err
}

// exchange runs the key exchange on conn, replaying first the
// identification line and whatever followed it (pending, the first
// identLen bytes of which are the line), and records the server's KEXINIT
// and host key in res.
func exchange(conn net.Conn, t fingerprint.Target, pending []byte, identLen int, res *fingerprint.Result) error {
	rc := &replayConn{Conn: conn, pending: bytes.Clone(pending), max: identLen + maxPacket}
	var keyType, keySum string
	algs, insecure := ssh.SupportedAlgorithms(), ssh.InsecureAlgorithms()
	cfg := &ssh.ClientConfig{
		Config: ssh.Config{
			KeyExchanges: append(algs.KeyExchanges, insecure.KeyExchanges...),
			Ciphers:      append(algs.Ciphers, insecure.Ciphers...),
			MACs:         append(algs.MACs, insecure.MACs...),
		},
		User:          "reach",
		ClientVersion: "SSH-2.0-reach",
		// Plain keys only, so the fingerprint is that of the key itself;
		// DSA too, since old devices have nothing else and the key is
		// recorded, not trusted.
		HostKeyAlgorithms: []string{
			ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
			ssh.InsecureKeyAlgoDSA, //lint:ignore SA1019 recorded, not trusted (see above)
		},
		// Called once the server has signed the exchange hash with this
		// key (RFC 4253 §8), so the key is the server's.
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			keyType, keySum = key.Type(), ssh.FingerprintSHA256(key)
			return errDone
		},
	}
	_, _, _, err := ssh.NewClientConn(rc, t.AddrPort.String(), cfg)

	if k, kerr := ParseKexInit(rc.after(identLen)); kerr == nil {
		res.Details["kex"] = strings.Join(k.Kex, ",")
		res.Details["hostkey_algorithms"] = strings.Join(k.HostKey, ",")
	}
	if keyType != "" {
		res.Details["hostkey_type"] = keyType
		res.Details["hostkey_sha256"] = keySum
		return nil
	}
	if err == nil {
		return errors.New("handshake ended without a host key")
	}
	return err
}

// replayConn hands out pending before reading from Conn, and keeps a copy
// of the first max bytes it hands out.
type replayConn struct {
	net.Conn
	pending []byte
	max     int

	mu   sync.Mutex // guards seen: the SSH client reads on its own goroutine
	seen []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.pending) > 0 {
		n = copy(p, c.pending)
		c.pending = c.pending[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	c.mu.Lock()
	if room := c.max - len(c.seen); room > 0 {
		c.seen = append(c.seen, p[:min(n, room)]...)
	}
	c.mu.Unlock()
	return n, err
}

// after returns a copy of what was handed out past the first skip bytes.
func (c *replayConn) after(skip int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if skip >= len(c.seen) {
		return nil
	}
	return bytes.Clone(c.seen[skip:])
}
