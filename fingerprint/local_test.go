package fingerprint_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
)

// TestStatusOfLocal maps the kernel's local errors, wrapped as dial and
// grab errors arrive, to local-error, and the target's own answers to
// their statuses.
func TestStatusOfLocal(t *testing.T) {
	dial := func(call string, e unix.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 80},
			Err: os.NewSyscallError(call, e)}
	}
	for _, tc := range []struct {
		name  string
		err   error
		local bool
		want  fingerprint.Status
	}{
		{"EMFILE from socket", dial("socket", unix.EMFILE), true, fingerprint.StatusLocalError},
		{"ENFILE from socket", dial("socket", unix.ENFILE), true, fingerprint.StatusLocalError},
		{"ENOBUFS from connect", dial("connect", unix.ENOBUFS), true, fingerprint.StatusLocalError},
		{"ENOMEM from socket", dial("socket", unix.ENOMEM), true, fingerprint.StatusLocalError},
		{"EADDRNOTAVAIL: no local port left", dial("connect", unix.EADDRNOTAVAIL), true, fingerprint.StatusLocalError},
		{"EADDRINUSE from connect", dial("connect", unix.EADDRINUSE), true, fingerprint.StatusLocalError},
		{"EPERM: a local firewall rule", dial("connect", unix.EPERM), true, fingerprint.StatusLocalError},
		{"EACCES from connect", dial("connect", unix.EACCES), true, fingerprint.StatusLocalError},
		{"ENOBUFS from a write, wrapped again", fmt.Errorf("redis: send INFO: %w",
			&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", unix.ENOBUFS)}), true, fingerprint.StatusLocalError},
		{"bare errno", unix.EMFILE, true, fingerprint.StatusLocalError},
		// the target's answers stay what they were
		{"ECONNREFUSED", dial("connect", unix.ECONNREFUSED), false, fingerprint.StatusRefused},
		{"ECONNRESET", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", unix.ECONNRESET)}, false, fingerprint.StatusReset},
		{"deadline", fmt.Errorf("read banner: %w", os.ErrDeadlineExceeded), false, fingerprint.StatusTimeout},
		{"not recognised", fmt.Errorf("ssh: %w", fingerprint.ErrNotRecognised), false, fingerprint.StatusNoBanner},
		{"garbage", errors.New("bad TPKT length 9"), false, fingerprint.StatusProtocolError},
		{"nil", nil, false, fingerprint.StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fingerprint.IsLocal(tc.err); got != tc.local {
				t.Errorf("IsLocal(%v) = %v, want %v", tc.err, got, tc.local)
			}
			if got := fingerprint.StatusOf(tc.err); got != tc.want {
				t.Errorf("StatusOf(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// TestPoolLocalDialError: a dial that fails locally ends the grab as
// local-error, not connected, even when it fails only at the deadline.
func TestPoolLocalDialError(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait bool // fail only once the grab's deadline passed
	}{{"at once", false}, {"at the deadline", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dials := 0
			pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Fallback: registry.Fallback(),
				Timeout: 200 * time.Millisecond,
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials++
					if tc.wait {
						<-ctx.Done()
					}
					return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", unix.EMFILE)}
				}})
			if err != nil {
				t.Fatal(err)
			}
			res := pool.Grab(context.Background(), fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.51.100.1:6379")})
			if res.Status != fingerprint.StatusLocalError || res.Connected || !strings.Contains(res.Error, "too many open files") {
				t.Errorf("got %s connected=%v %q, want local-error, not connected, too many open files", res.Status, res.Connected, res.Error)
			}
			if dials != 1 {
				t.Errorf("%d dials, want 1: a local failure ends the grab", dials)
			}
		})
	}
}

// TestPoolOutOfDescriptors runs a real pool in a child process whose
// RLIMIT_NOFILE is lowered to 64 and used up, against a Redis stand-in on
// 127.0.0.1: a control grab before the limit identifies Redis, every grab
// after it is local-error.
func TestPoolOutOfDescriptors(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "REACH_OUT_OF_FDS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1+outOfFDsTargets {
		t.Fatalf("child printed %d lines, want %d:\n%s", len(lines), 1+outOfFDsTargets, out)
	}
	if lines[0] != "control success redis" {
		t.Errorf("control grab before the limit: %q, want success redis", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "local-error connected=false ") || !strings.Contains(l, "too many open files") {
			t.Errorf("grab out of descriptors: %q, want local-error, not connected, too many open files", l)
		}
	}
}

const outOfFDsTargets = 8

// outOfFDsChild is TestPoolOutOfDescriptors' child: it prints the control
// grab's status and service, then one line per grab made with no
// descriptor left.
func outOfFDsChild() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // EMFILE once the limit is used up
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go func() { defer c.Close(); redisServe(c) }()
		}
	}()
	routes := map[netip.AddrPort]string{}
	for p := range outOfFDsTargets + 1 {
		routes[netip.AddrPortFrom(netip.MustParseAddr("198.51.100.3"), uint16(6379+p))] = ln.Addr().String()
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dialer(routes),
		Timeout: 2 * time.Second, PerAddr: outOfFDsTargets})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	res := pool.Grab(context.Background(), fingerprint.Target{AddrPort: netip.MustParseAddrPort("198.51.100.3:6379")})
	fmt.Println("control", res.Status, res.Service)

	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 64}); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				fmt.Println("fill descriptors:", err)
				return 1
			}
			break
		}
		held = append(held, f)
	}
	b := pool.Start(context.Background())
	results := make(chan fingerprint.Result, outOfFDsTargets)
	for p := range outOfFDsTargets {
		b.Submit(fingerprint.Target{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.3"), uint16(6380+p))},
			func(r fingerprint.Result) { results <- r })
	}
	b.Wait()
	close(results)
	w := bufio.NewWriter(os.Stdout)
	for r := range results {
		fmt.Fprintf(w, "%s connected=%v %s\n", r.Status, r.Connected, r.Error)
	}
	w.Flush()
	for _, f := range held {
		f.Close()
	}
	return 0
}

// TestPoolStoppedBeforeTried: when the batch's context ends, the target in
// flight ends as a timeout, and the targets still queued behind it get a
// result with no status (never tried), not a timeout that would read as a
// fact about them.
func TestPoolStoppedBeforeTried(t *testing.T) {
	silent := server(t, func(c net.Conn) { c.Read(make([]byte, 1)) }) // until the grab gives up
	addr := netip.MustParseAddr("198.51.100.20")
	routes := map[netip.AddrPort]string{}
	for p := range 5 {
		routes[netip.AddrPortFrom(addr, uint16(5000+p))] = silent
	}
	connected := make(chan struct{}, 8)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer(routes)(ctx, network, addr)
		if err == nil {
			connected <- struct{}{}
		}
		return c, err
	}
	pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dial,
		Workers: 1, PerAddr: 1, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := pool.Start(ctx)
	results := make(chan fingerprint.Result, len(routes))
	for p := range 5 {
		b.Submit(fingerprint.Target{AddrPort: netip.AddrPortFrom(addr, uint16(5000+p))}, func(r fingerprint.Result) { results <- r })
	}
	<-connected // the first grab is connected
	cancel()
	b.Wait()
	close(results)
	var tried, untried int
	for r := range results {
		switch {
		case r.Status == fingerprint.StatusTimeout && r.Connected:
			tried++
		case r.Status == "" && !r.Connected && r.Target.IsValid() && !r.Time.IsZero():
			untried++
		default:
			t.Errorf("%v: status %q connected=%v (%s), want a timeout in flight or no status", r.Target, r.Status, r.Connected, r.Error)
		}
	}
	if tried != 1 || untried != 4 {
		t.Errorf("%d grabs ended as timeouts, %d untried; want 1 and 4", tried, untried)
	}
}
