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
	"strings"
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
		res, err := scan.Run(context.Background(), scan.Config{Plan: plan, Blocklist: block, RatePPS: 1000, Probes: 1,
			SourcePorts: busyWindow, TCPOptions: packet.OptionsLinux, TTL: 64, Method: send.MethodSendmmsg,
			Receiver: args[0], Log: log})
		if err != nil {
			fmt.Printf("error busy=%v %v\n", errors.Is(err, recv.ErrInterfaceBusy), err)
			return 0
		}
		fmt.Printf("sent %d receiver %s\n", res.Sent, res.Receiver)
		return 0
	}
	fmt.Println("unknown role", role)
	return 1
}

// TestSecondScanRefused attaches one scan's XDP receiver to the scanner's
// veth and checks that a second scan there, with every receiver mode, and
// each receiver's constructor, fail with ErrInterfaceBusy and that not one
// probe reaches the far side (its kernel's TCP InSegs). Scans before and
// after the first receiver's life send their probes, so the count would
// show any.
func TestSecondScanRefused(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	nw, err := testnet.New(ctx, testnet.Options{AnyIP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	childCmd := func(args ...string) *exec.Cmd {
		cmd := nw.Command(ctx, nw.Scan, self, args[1:]...)
		cmd.Env = append(os.Environ(), "REACH_SCAN_CHILD="+args[0], "REACH_SCAN_IFACE="+nw.ScanIf)
		return cmd
	}
	runChildLog := func(args ...string) (string, string) {
		t.Helper()
		var stderr strings.Builder
		cmd := childCmd(args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return strings.TrimSpace(string(out)), stderr.String()
	}
	runChild := func(args ...string) string {
		t.Helper()
		out, _ := runChildLog(args...)
		return out
	}
	inSegs := func() uint64 {
		t.Helper()
		n, err := nw.TCPCounter(ctx, nw.Net, "InSegs")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	scanSends := func(when string) {
		t.Helper()
		before := inSegs()
		if out := runChild("scan", "auto"); out != fmt.Sprintf("sent %d receiver xdp/driver", busyTargets) && out != fmt.Sprintf("sent %d receiver xdp/generic", busyTargets) {
			t.Fatalf("scan %s: %q, want %d probes sent with the XDP receiver", when, out, busyTargets)
		}
		if d := inSegs() - before; d != busyTargets {
			t.Fatalf("scan %s: far side received %d segments, want %d", when, d, busyTargets)
		}
	}
	scanSends("before the first receiver")

	hold := childCmd("hold")
	stdin, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	held := true
	release := func() {
		if held {
			held = false
			stdin.Close()
			hold.Wait()
		}
	}
	t.Cleanup(release)
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "attached xdp/") {
		t.Fatalf("first receiver: %q", line)
	}

	for _, mode := range []string{"auto", "xdp", "afpacket"} {
		t.Run("scan/"+mode, func(t *testing.T) {
			before := inSegs()
			out := runChild("scan", mode)
			if !strings.HasPrefix(out, "error busy=true ") || !strings.Contains(out, bpf.ProgramName) {
				t.Errorf("second scan: %q, want an error wrapping ErrInterfaceBusy naming %s", out, bpf.ProgramName)
			}
			if d := inSegs() - before; d != 0 {
				t.Errorf("second scan sent: far side received %d segments, want 0", d)
			}
		})
	}
	t.Run("constructors", func(t *testing.T) {
		out := runChild("new")
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
	if err := nw.AttachScanPassthrough(ctx, responder.Object); err != nil {
		t.Fatal(err)
	}
	before := inSegs()
	out, log := runChildLog("scan", "afpacket")
	if out != fmt.Sprintf("sent %d receiver afpacket", busyTargets) {
		t.Errorf("scan beside another XDP program: %q, want %d probes sent with the AF_PACKET receiver", out, busyTargets)
	}
	if !strings.Contains(log, "another XDP program is attached") || !strings.Contains(log, "respond (program id") {
		t.Errorf("scan beside another XDP program does not warn naming it:\n%s", log)
	}
	if d := inSegs() - before; d != busyTargets {
		t.Errorf("scan beside another XDP program: far side received %d segments, want %d", d, busyTargets)
	}
	// auto falls back to AF_PACKET and says which program holds the interface
	out, log = runChildLog("scan", "auto")
	if out != fmt.Sprintf("sent %d receiver afpacket", busyTargets) || !strings.Contains(log, "holds the interface") {
		t.Errorf("auto scan beside another XDP program: %q, want the AF_PACKET fallback naming the holder:\n%s", out, log)
	}
}
