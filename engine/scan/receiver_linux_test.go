package scan_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/bpf"
	"github.com/reachscan/reach/engine/packet"
	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/engine/scan"
	"github.com/reachscan/reach/engine/send"
	"github.com/reachscan/reach/engine/target"
)

// TestMain lets the test binary act inside the namespaces a test creates
// (it is started there with ip netns exec): REACH_SCAN_CHILD=scan MODE runs
// one small scan, =hold attaches an XDP receiver until stdin closes, =new
// tries each receiver's constructor.
func TestMain(m *testing.M) {
	if role := os.Getenv("REACH_SCAN_CHILD"); role != "" {
		os.Exit(child(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// busyTargets is the child scan: 16 addresses of the simulated internet,
// port 80, one probe each.
const busyTargets = 16

var busyWindow = packet.PortWindow{First: 61000, Count: 4535}

func child(role string, args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if role == "listen" {
		return listen()
	}
	ifi, err := net.InterfaceByName(os.Getenv("REACH_SCAN_IFACE"))
	if err != nil {
		fmt.Println("interface:", err)
		return 1
	}
	set := target.NewSet([]target.Range{{First: target.U32(testnet.Internet.Addr()), Last: target.U32(testnet.Internet.Addr()) + busyTargets - 1}})
	space, err := target.NewSpace(set, []uint16{80})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	cookie, err := packet.NewCookie(7, busyWindow, 1)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	switch role {
	case "hold":
		k0, k1 := cookie.Key()
		x, err := recv.NewXDP(ifi, bpf.Config{Key0: k0, Key1: k1, SrcFirst: target.U32(testnet.ScanIP), SrcLast: target.U32(testnet.ScanIP),
			WindowFirst: busyWindow.First, WindowCount: busyWindow.Count, Probes: 1, SendReset: true}, cookie, space)
		if err != nil {
			fmt.Println("hold:", err)
			return 1
		}
		defer x.Close()
		fmt.Println("attached", x.Mode())
		io.Copy(io.Discard, os.Stdin) // until the test closes it
		return 0
	case "new":
		k0, k1 := cookie.Key()
		src := target.U32(testnet.ScanIP)
		_, xerr := recv.NewXDP(ifi, bpf.Config{Key0: k0, Key1: k1, SrcFirst: src, SrcLast: src,
			WindowFirst: busyWindow.First, WindowCount: busyWindow.Count, Probes: 1, SendReset: true}, cookie, space)
		_, aerr := recv.NewAFPacket(ifi, recv.FilterConfig{SrcFirst: src, SrcLast: src, Window: busyWindow}, cookie, space)
		for _, r := range []struct {
			name string
			err  error
		}{{"xdp", xerr}, {"afpacket", aerr}} {
			fmt.Printf("%s busy=%v %v\n", r.name, errors.Is(r.err, recv.ErrInterfaceBusy), r.err)
		}
		return 0
	case "scan":
		// args: receiver mode, then optionally the address count, the
		// cooldown and the reset path (auto, xdp_tx or kernel)
		n, cooldown, resets := uint32(busyTargets), time.Duration(0), bpf.ResetAuto
		if len(args) > 3 {
			switch args[3] {
			case "xdp_tx":
				resets = bpf.ResetXDPTX
			case "kernel":
				resets = bpf.ResetKernel
			}
			v, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			if cooldown, err = time.ParseDuration(args[2]); err != nil {
				fmt.Println(err)
				return 1
			}
			n = uint32(v)
			first := target.U32(testnet.Internet.Addr())
			if space, err = target.NewSpace(target.NewSet([]target.Range{{First: first, Last: first + n - 1}}), []uint16{80}); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		plan, err := scan.NewPlan(space, 7, permute.Layout{Shards: 1, Threads: 1})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		block, err := target.BuildBlocklist(target.Spec{NoDefaultBlocklist: true})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		res, err := scan.Run(context.Background(), scan.Config{Plan: plan, Blocklist: block, RatePPS: 5000, Probes: 1,
			SourcePorts: busyWindow, TCPOptions: packet.OptionsLinux, TTL: 64, Method: send.MethodSendmmsg,
			Receiver: args[0], Cooldown: cooldown, ResetPath: resets, Log: log})
		if err != nil {
			fmt.Printf("error busy=%v %v\n", errors.Is(err, recv.ErrInterfaceBusy), err)
			return 0
		}
		if len(args) > 3 {
			var xc bpf.Counters
			if res.XDP != nil {
				xc = *res.XDP
			}
			fmt.Printf("sent=%d open=%d receiver=%s resets=%s tx=%d reset_failed=%d xdp_tx_errors=%d counted=%v\n",
				res.Sent, res.Open, strings.SplitN(res.Receiver, "/", 2)[0], res.Resets, xc.TX, xc.ResetFailed, res.XDPTXErrors, res.XDPTXCounted)
			return 0
		}
		fmt.Printf("sent %d receiver %s\n", res.Sent, res.Receiver)
		return 0
	}
	fmt.Println("unknown role", role)
	return 1
}

// listen is the far side: it listens on port 80 of every address (the net
// namespace owns the simulated internet through AnyIP) without accepting,
// so only the kernel's handshake replies are seen, until stdin closes.
func listen() int {
	l, err := net.Listen("tcp4", "0.0.0.0:80")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer l.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// lab is a simulated network and this test binary's children in it.
type lab struct {
	t    *testing.T
	ctx  context.Context
	nw   *testnet.Network
	self string
}

func newLab(t *testing.T, opt testnet.Options) *lab {
	t.Helper()
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	nw, err := testnet.New(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, ctx: ctx, nw: nw, self: self}
}

// cmd is the child role with args in namespace ns.
func (l *lab) cmd(ns, role string, args ...string) *exec.Cmd {
	cmd := l.nw.Command(l.ctx, ns, l.self, args...)
	cmd.Env = append(os.Environ(), "REACH_SCAN_CHILD="+role, "REACH_SCAN_IFACE="+l.nw.ScanIf)
	return cmd
}

// run runs a child in the scanner's namespace and returns its stdout
// (trimmed) and stderr (its log).
func (l *lab) run(role string, args ...string) (string, string) {
	l.t.Helper()
	var stderr strings.Builder
	cmd := l.cmd(l.nw.Scan, role, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("child %s %v: %v\n%s%s", role, args, err, out, stderr.String())
	}
	return strings.TrimSpace(string(out)), stderr.String()
}

// start starts a long-lived child in namespace ns and returns the first
// line it prints and a stop function (closing its stdin) that waits for it.
func (l *lab) start(ns, role string) (string, func()) {
	l.t.Helper()
	cmd := l.cmd(ns, role)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { stdin.Close(); cmd.Wait() }) }
	l.t.Cleanup(stop)
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	return strings.TrimSpace(line), stop
}

// tcp reads a Tcp counter of the far side's kernel.
func (l *lab) tcp(field string) uint64 {
	l.t.Helper()
	n, err := l.nw.TCPCounter(l.ctx, l.nw.Net, field)
	if err != nil {
		l.t.Fatal(err)
	}
	return n
}

// TestSecondScanRefused attaches one scan's XDP receiver to the scanner's
// veth and checks that a second scan there, with every receiver mode, and
// each receiver's constructor, fail with ErrInterfaceBusy and that not one
// probe reaches the far side (its kernel's TCP InSegs). Scans before and
// after the first receiver's life send their probes, so the count would
// show any.
func TestSecondScanRefused(t *testing.T) {
	l := newLab(t, testnet.Options{AnyIP: true})
	scanSends := func(when string) {
		t.Helper()
		before := l.tcp("InSegs")
		if out, _ := l.run("scan", "auto"); out != fmt.Sprintf("sent %d receiver xdp/driver", busyTargets) && out != fmt.Sprintf("sent %d receiver xdp/generic", busyTargets) {
			t.Fatalf("scan %s: %q, want %d probes sent with the XDP receiver", when, out, busyTargets)
		}
		if d := l.tcp("InSegs") - before; d != busyTargets {
			t.Fatalf("scan %s: far side received %d segments, want %d", when, d, busyTargets)
		}
	}
	scanSends("before the first receiver")

	line, release := l.start(l.nw.Scan, "hold")
	if !strings.HasPrefix(line, "attached xdp/") {
		t.Fatalf("first receiver: %q", line)
	}
	for _, mode := range []string{"auto", "xdp", "afpacket"} {
		t.Run("scan/"+mode, func(t *testing.T) {
			before := l.tcp("InSegs")
			out, _ := l.run("scan", mode)
			if !strings.HasPrefix(out, "error busy=true ") || !strings.Contains(out, bpf.ProgramName) {
				t.Errorf("second scan: %q, want an error wrapping ErrInterfaceBusy naming %s", out, bpf.ProgramName)
			}
			if d := l.tcp("InSegs") - before; d != 0 {
				t.Errorf("second scan sent: far side received %d segments, want 0", d)
			}
		})
	}
	t.Run("constructors", func(t *testing.T) {
		out, _ := l.run("new")
		for _, name := range []string{"xdp", "afpacket"} {
			if !strings.Contains(out, name+" busy=true ") {
				t.Errorf("New for %s: %q, want ErrInterfaceBusy", name, out)
			}
		}
	})
	release()
	scanSends("after the first receiver detached")

	// another program's XDP (here one that passes everything) is no
	// reason to refuse, but the scan says it is there
	if err := l.nw.AttachScanPassthrough(l.ctx, responder.Object); err != nil {
		t.Fatal(err)
	}
	before := l.tcp("InSegs")
	out, log := l.run("scan", "afpacket")
	if out != fmt.Sprintf("sent %d receiver afpacket", busyTargets) {
		t.Errorf("scan beside another XDP program: %q, want %d probes sent with the AF_PACKET receiver", out, busyTargets)
	}
	if !strings.Contains(log, "another XDP program is attached") || !strings.Contains(log, "respond (program id") {
		t.Errorf("scan beside another XDP program does not warn naming it:\n%s", log)
	}
	if d := l.tcp("InSegs") - before; d != busyTargets {
		t.Errorf("scan beside another XDP program: far side received %d segments, want %d", d, busyTargets)
	}
	// auto falls back to AF_PACKET and says which program holds the interface
	out, log = l.run("scan", "auto")
	if out != fmt.Sprintf("sent %d receiver afpacket", busyTargets) || !strings.Contains(log, "holds the interface") {
		t.Errorf("auto scan beside another XDP program: %q, want the AF_PACKET fallback naming the holder:\n%s", out, log)
	}
}

// TestResetFailuresCounted scans 64 listening addresses of the far side's
// kernel with the XDP receiver, far veth by far veth, and compares the RSTs
// the scan reports as failed with those the far side never received (the
// matcher's XDP_TX count less the far side's TCP InSegs beyond the 64
// SYNs). A veth delivers XDP_TX only to a peer that runs an XDP program:
// without one, auto lets the kernel send the RSTs (nothing lost); forced
// XDP_TX into a peer without NAPI loses every RST and counts each; into a
// peer with GRO it loses the last ones uncounted, so the scan says its
// count is not confirmed.
func TestResetFailuresCounted(t *testing.T) {
	const n = 64
	for _, tc := range []struct {
		name         string
		gro, peerXDP bool
		path         string // forced reset path, or auto
		resets       string // the path the scan reports
		lossAll      bool   // every RST lost (else none, or some when unconfirmed)
		counted      bool
		warns        string // in the scan's log
	}{
		{name: "peer without NAPI, auto", path: "auto", resets: "kernel", counted: true, warns: "the kernel answers SYN-ACKs with RSTs instead"},
		{name: "peer with GRO, auto", gro: true, path: "auto", resets: "kernel", counted: true, warns: "the kernel answers SYN-ACKs with RSTs instead"},
		{name: "peer with XDP, auto", peerXDP: true, path: "auto", resets: "xdp_tx", counted: true},
		{name: "peer without NAPI, XDP_TX forced", path: "xdp_tx", resets: "xdp_tx", lossAll: true, warns: "RSTs sent with XDP_TX are not confirmed"},
		{name: "peer with GRO, XDP_TX forced", gro: true, path: "xdp_tx", resets: "xdp_tx", warns: "RSTs sent with XDP_TX are not confirmed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, testnet.Options{AnyIP: true, GRO: tc.gro})
			if tc.peerXDP {
				if err := l.nw.AttachNetPassthrough(l.ctx, responder.Object); err != nil {
					t.Fatal(err)
				}
			}
			if line, _ := l.start(l.nw.Net, "listen"); line != "ready" {
				t.Fatalf("listener: %q", line)
			}
			before := l.tcp("InSegs")
			out, log := l.run("scan", "xdp", strconv.Itoa(n), "1500ms", tc.path)
			in := l.tcp("InSegs") - before
			var sent, open, tx, resetFailed, txErrors uint64
			var receiver, resets string
			var counted bool
			if _, err := fmt.Sscanf(out, "sent=%d open=%d receiver=%s resets=%s tx=%d reset_failed=%d xdp_tx_errors=%d counted=%t",
				&sent, &open, &receiver, &resets, &tx, &resetFailed, &txErrors, &counted); err != nil {
				t.Fatalf("scan: %q: %v\n%s", out, err, log)
			}
			if sent != n || open != n || receiver != "xdp" || resets != tc.resets {
				t.Fatalf("scan: %q, want %d sent, %d open, receiver xdp, resets %s\n%s", out, n, n, tc.resets, log)
			}
			if in < n {
				t.Fatalf("far side received %d segments, fewer than the %d SYNs", in, n)
			}
			rsts := in - n // the far side's only other segments are our RSTs
			var lost uint64
			if resets == "xdp_tx" {
				lost = tx - min(tx, rsts) // RSTs the matcher sent that never arrived
			} else if rsts < n {
				lost = n - rsts // the kernel answers each SYN-ACK once it arrives
			}
			t.Logf("%s; far side InSegs +%d: %d RSTs lost", out, in, lost)
			switch {
			case tc.lossAll && (lost == 0 || lost != tx):
				t.Errorf("%d of %d RSTs lost, want all: the test's premise failed", lost, tx)
			case !tc.lossAll && tc.counted && lost != 0:
				t.Errorf("%d RSTs lost, want none", lost)
			case !tc.lossAll && !tc.counted && lost == 0:
				t.Errorf("no RST lost: the test's premise (stranded XDP_TX frames) failed")
			}
			if tc.counted != counted {
				t.Errorf("counted=%v, want %v", counted, tc.counted)
			}
			if counted && txErrors+resetFailed != lost {
				t.Errorf("reported %d failed RSTs (%d XDP_TX errors, %d not built), %d lost", txErrors+resetFailed, txErrors, resetFailed, lost)
			}
			if tc.lossAll && txErrors != lost {
				t.Errorf("reported %d XDP_TX errors, %d RSTs lost: the driver's count must hold", txErrors, lost)
			}
			if tc.warns != "" && !strings.Contains(log, tc.warns) {
				t.Errorf("log lacks %q:\n%s", tc.warns, log)
			}
			if resets == "kernel" {
				if out, _ := l.nw.TCPCounter(l.ctx, l.nw.Scan, "OutRsts"); out != n {
					t.Errorf("scanning kernel sent %d RSTs, want %d", out, n)
				}
			}
		})
	}
}
