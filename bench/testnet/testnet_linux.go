// Package testnet builds the simulated network that tests, the demo and the
// benchmarks scan: a scanner namespace and a "net" namespace joined by a veth
// pair, with addresses only in 198.18.0.0/15 (RFC 2544 benchmarking space)
// and no route anywhere else, so no probe can leave the machine.
//
//	ns scan ── veth ── ns net
//	198.18.0.1/24      198.18.0.254/24
//	route 198.19/16    local 198.19.0.0/16 dev lo (AnyIP)
//	  via .254
//
// Everything it creates is removed by Close, also after a failure.
package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Addresses of the simulated network.
var (
	ScanIP    = netip.MustParseAddr("198.18.0.1")
	GatewayIP = netip.MustParseAddr("198.18.0.254")
	// Internet is the address block the net namespace answers for.
	Internet = netip.MustParsePrefix("198.19.0.0/16")
)

// Options select the far side's behaviour.
type Options struct {
	// AnyIP makes the net namespace's kernel own all of Internet, so it
	// answers SYNs itself (SYN-ACK from listeners, RST otherwise).
	AnyIP bool
	// GRO turns on GRO on both veth ends, which XDP_TX on the net side
	// needs to deliver. XDP_TX from the scanner's end needs more: a veth
	// delivers it only to a peer running XDP (AttachNetPassthrough); with
	// GRO alone the frames wait in the peer's queue for other traffic.
	GRO bool
	// Queues is the number of RX and TX queues of each veth end (default
	// 1); senders with several threads need one queue each to scale.
	Queues int
}

// Network is one simulated network.
type Network struct {
	Scan, Net     string // namespace names
	ScanIf, NetIf string // veth ends, inside their namespaces
	created       []string
	closed        bool
	procs         []*exec.Cmd // servers started in the namespaces
	serverDir     string      // their configuration and data
	cleanup       []func()
}

// Available reports why the simulated network cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, veth, AF_PACKET)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs iproute2's ip command (apt-get install iproute2)")
	}
	return nil
}

// New builds a simulated network with unique names. Call Close when done.
func New(ctx context.Context, opt Options) (_ *Network, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	n := &Network{Scan: "reach-s-" + id, Net: "reach-n-" + id, ScanIf: "rs" + id, NetIf: "rn" + id}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for _, ns := range []string{n.Scan, n.Net} {
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		n.created = append(n.created, ns)
		// no IPv6 (router solicitations, MLD) and loopback up
		for _, c := range [][]string{
			{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
			{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
			{"ip", "link", "set", "lo", "up"},
		} {
			if err := n.run(ctx, ns, c...); err != nil {
				return nil, err
			}
		}
	}
	// the veth pair is created directly inside the two namespaces
	q := []string{}
	if opt.Queues > 1 {
		nq := strconv.Itoa(opt.Queues)
		q = []string{"numtxqueues", nq, "numrxqueues", nq}
	}
	args := append([]string{"link", "add", n.ScanIf, "netns", n.Scan}, q...)
	args = append(args, "type", "veth", "peer", "name", n.NetIf, "netns", n.Net)
	if err := run(ctx, "ip", append(args, q...)...); err != nil {
		return nil, err
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{n.Scan, []string{"ip", "addr", "add", ScanIP.String() + "/24", "dev", n.ScanIf}},
		{n.Scan, []string{"ip", "link", "set", n.ScanIf, "up"}},
		{n.Scan, []string{"ip", "route", "add", Internet.String(), "via", GatewayIP.String(), "dev", n.ScanIf}},
		{n.Net, []string{"ip", "addr", "add", GatewayIP.String() + "/24", "dev", n.NetIf}},
		{n.Net, []string{"ip", "link", "set", n.NetIf, "up"}},
		{n.Net, []string{"ip", "route", "add", ScanIP.String() + "/32", "dev", n.NetIf}},
	}
	if opt.AnyIP {
		steps = append(steps, struct {
			ns   string
			args []string
		}{n.Net, []string{"ip", "route", "add", "local", Internet.String(), "dev", "lo"}})
	}
	for _, s := range steps {
		if err := n.run(ctx, s.ns, s.args...); err != nil {
			return nil, err
		}
	}
	if _, err := exec.LookPath("ethtool"); err == nil {
		// kernel-made replies must leave with full checksums: no TX offload
		for _, e := range []struct{ ns, dev string }{{n.Scan, n.ScanIf}, {n.Net, n.NetIf}} {
			args := []string{"ethtool", "-K", e.dev, "tx", "off"}
			if opt.GRO {
				args = append(args, "gro", "on")
			}
			if err := n.run(ctx, e.ns, args...); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// AttachResponder loads the XDP responder (package bench/responder) on the
// net side's veth, so every SYN to Internet is answered in XDP by its
// ground truth, and the far side's kernel never sees a probe. The scanner's
// veth end needs GRO on (Options.GRO) for XDP_TX to deliver.
func (n *Network) AttachResponder(ctx context.Context, object []byte) error {
	return n.attach(ctx, n.Net, n.NetIf, object, "xdp")
}

// AttachResponderSection is AttachResponder with the program in section
// sec of object (see responder.AnswerButServers).
func (n *Network) AttachResponderSection(ctx context.Context, object []byte, sec string) error {
	return n.attach(ctx, n.Net, n.NetIf, object, sec)
}

// AttachScanPassthrough loads the responder object on the scanner's veth
// too, where it passes every frame (nothing there is addressed to
// Internet): it gives that end the NAPI instance XDP_TX from the net side
// needs when reach itself runs no XDP program (the AF_PACKET receiver).
// GRO alone was seen not to suffice on kernel 6.18: the net side's XDP_TX
// filled the 256-frame ring and then failed.
func (n *Network) AttachScanPassthrough(ctx context.Context, object []byte) error {
	return n.attach(ctx, n.Scan, n.ScanIf, object, "xdp")
}

// AttachNetPassthrough loads the responder object's pass program on the
// net side's veth: the far side's kernel still answers everything, and
// XDP_TX from the scanner's end (reach's RSTs) now delivers, as it does to
// a physical link; a veth delivers XDP_TX only to a peer running XDP.
func (n *Network) AttachNetPassthrough(ctx context.Context, object []byte) error {
	return n.attach(ctx, n.Net, n.NetIf, object, "xdp/pass")
}

func (n *Network) attach(ctx context.Context, ns, dev string, object []byte, sec string) error {
	f, err := os.CreateTemp("", "reach-responder-*.o")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(object); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return n.run(ctx, ns, "ip", "link", "set", "dev", dev, "xdp", "obj", f.Name(), "sec", sec)
}

// NetMAC returns the MAC address of the net side's veth end: the gateway
// MAC that scanners without a neighbour lookup (ZMap -G, masscan
// --router-mac) need.
func (n *Network) NetMAC(ctx context.Context) (string, error) {
	out, err := n.Command(ctx, n.Net, "cat", "/sys/class/net/"+n.NetIf+"/address").Output()
	if err != nil {
		return "", fmt.Errorf("read mac of %s: %w", n.NetIf, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// InNamespace runs f on an OS thread that has entered namespace ns, for
// calls (ethtool, netlink) that act on the caller's network namespace. The
// thread returns to its own namespace afterwards; if it cannot, it is
// discarded, so no other goroutine ever runs in ns.
func InNamespace(ns string, f func() error) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return // still locked: the goroutine's exit ends the thread
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Command returns a command that runs inside namespace ns.
func (n *Network) Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func (n *Network) run(ctx context.Context, ns string, args ...string) error {
	return runCmd(n.Command(ctx, ns, args[0], args[1:]...))
}

func run(ctx context.Context, name string, args ...string) error {
	return runCmd(exec.CommandContext(ctx, name, args...))
}

func runCmd(c *exec.Cmd) error {
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(c.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Close deletes the namespaces (and with them the veth pair and every
// process-less resource inside). Processes started in them must be stopped
// by their owners first.
func (n *Network) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	// servers: SIGTERM lets each stop and reap its own workers
	for _, p := range n.procs {
		if p.Process != nil {
			p.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range n.procs {
		if p.Process == nil {
			continue
		}
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	// processes that daemonised or forked workers: kill whatever is left in
	// the namespaces before deleting them
	for _, ns := range n.created {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				if pid == strconv.Itoa(os.Getpid()) {
					continue // a thread of ours visiting the namespace
				}
				exec.Command("kill", "-9", pid).Run()
			}
		}
	}
	for _, f := range n.cleanup {
		f()
	}
	var errs []error
	for _, ns := range n.created {
		if err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
