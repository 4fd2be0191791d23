package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/reachscan/reach/bench/testnet"
	"github.com/reachscan/reach/engine/packet"
)

// TestMain lets the test binary act as the reach binary inside the
// namespaces a test creates (REACH_RUN_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("REACH_RUN_MAIN") == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// reachIn runs reach with args inside namespace ns of nw.
func reachIn(ctx context.Context, t *testing.T, nw *testnet.Network, ns string, args ...string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := nw.Command(ctx, ns, self, args...)
	cmd.Env = append(os.Environ(), "REACH_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// capture runs tcpdump on the net side of nw until stop is called, and
// returns the pcap path and the kernel drop count.
func startCapture(ctx context.Context, t *testing.T, nw *testnet.Network, filter string) (stop func() (string, int)) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (make test installs it)")
	}
	path := filepath.Join(t.TempDir(), "far.pcap")
	cmd := nw.Command(ctx, nw.Net, "tcpdump", "-i", nw.NetIf, "-w", path, "-U", "--immediate-mode", "-B", "65536", "-Q", "in", "-nn", filter)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); rest <- string(b) }()
	return func() (string, int) {
		time.Sleep(300 * time.Millisecond) // let the last frames reach the capture
		cmd.Process.Signal(syscall.SIGINT)
		text := <-rest
		cmd.Wait()
		m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("tcpdump summary missing: %s", text)
		}
		drops, _ := strconv.Atoi(m[1])
		return path, drops
	}
}

// TestScanSendsEveryPairOnce sends a /16 × 3 ports at a fixed rate from the
// scanner namespace, with each send method, and checks the far side's
// capture: every pair exactly once, valid checksums and cookies, nothing
// else, and never faster than the rate asked.
func TestScanSendsEveryPairOnce(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	for _, tt := range []struct {
		method, targets string
		rate            float64
		n               int
	}{
		{"txring", "198.19.0.0/16", 100_000, 65536 * 3},
		{"sendmmsg", "198.19.16.0/20", 50_000, 4096 * 3},
	} {
		t.Run(tt.method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			nw, err := testnet.New(ctx, testnet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nw.Close() })
			stop := startCapture(ctx, t, nw, "ip")
			out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "42", "-p", "22,80,443",
				"--rate", fmt.Sprint(tt.rate), "--send-method", tt.method, "--quiet", tt.targets)
			if err != nil {
				t.Fatalf("reach scan: %v\n%s", err, out)
			}
			path, drops := stop()
			if drops != 0 {
				t.Fatalf("capture dropped %d frames; cannot judge", drops)
			}
			checkCapture(t, path, tt.n, tt.rate)
		})
	}
}

// TestScanOnLinkTargets mixes routed targets with targets on the scanner's
// own subnet: the on-link host that answers ARP is probed at its own MAC,
// the silent ones are skipped with a warning, the routed ones go to the
// gateway.
func TestScanOnLinkTargets(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	stop := startCapture(ctx, t, nw, "ip")
	out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "--seed", "42", "-p", "22,80,443",
		"--rate", "1000", "--quiet", "198.18.0.250-198.18.0.254", "198.19.0.0/30")
	if err != nil {
		t.Fatalf("reach scan: %v\n%s", err, out)
	}
	if !strings.Contains(out, "on-link targets did not answer ARP; they are skipped\" count=4") {
		t.Fatalf("no warning about the 4 silent on-link targets:\n%s", out)
	}
	path, _ := stop()
	checkCapture(t, path, 5*3, 1000)
}

// TestScanRefusesEphemeralPorts: scan source ports inside the kernel's
// ephemeral range on an address the kernel owns are refused before anything
// is sent.
func TestScanRefusesEphemeralPorts(t *testing.T) {
	if err := testnet.Available(); err != nil {
		t.Skipf("simulated network unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	stop := startCapture(ctx, t, nw, "ip")
	out, err := reachIn(ctx, t, nw, nw.Scan, "scan", "--no-default-blocklist", "-p", "80", "--source-port", "40000-40100", "198.19.0.0/24")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(out, "ip_local_port_range 32768-60999 on 198.18.0.1") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	path, _ := stop()
	checkCapture(t, path, 0, 1)
}

func checkCapture(t *testing.T, path string, want int, rate float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cookie, _ := packet.NewCookie(42, packet.PortWindow{First: 61000, Count: 4536}, 1)
	seen := make(map[[2]uint32]bool, want)
	var first, last time.Time
	for {
		data, ci, err := rd.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = ci.Timestamp
		}
		last = ci.Timestamp
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil || !tcp.SYN || tcp.ACK || tcp.RST {
			t.Fatalf("unexpected frame on the wire: %v", pkt)
		}
		if !ip.SrcIP.Equal(testnet.ScanIP.AsSlice()) || ip.DstIP[0] != 198 || ip.DstIP[1]&0xfe != 18 {
			t.Fatalf("frame %v → %v outside the simulated network", ip.SrcIP, ip.DstIP)
		}
		ipHdr := data[packet.EthLen : packet.EthLen+packet.IPv4Len]
		seg := data[packet.EthLen+packet.IPv4Len:]
		src, dst := u32(ip.SrcIP), u32(ip.DstIP)
		if packet.Checksum(ipHdr, 0) != 0 || packet.Checksum(seg, packet.PseudoSum(src, dst, len(seg))) != 0 {
			t.Fatalf("bad checksum: %v", pkt)
		}
		back := packet.Reply{Src: dst, Dst: src, Sport: uint16(tcp.DstPort), Dport: uint16(tcp.SrcPort), Flags: packet.FlagSYN | packet.FlagACK, Ack: tcp.Seq + 1}
		if v := cookie.Check(&back); v != packet.SynAck {
			t.Fatalf("cookie check %v for %v", v, pkt)
		}
		k := [2]uint32{dst, uint32(tcp.DstPort)}
		if seen[k] {
			t.Fatalf("%v:%d probed twice", ip.DstIP, tcp.DstPort)
		}
		seen[k] = true
	}
	if len(seen) != want {
		t.Fatalf("%d distinct pairs on the wire, want %d", len(seen), want)
	}
	if want < 2 {
		return
	}
	achieved := float64(want-1) / last.Sub(first).Seconds()
	t.Logf("%d probes, achieved %.0f pps (asked %.0f)", want, achieved, rate)
	if achieved > rate*1.02 {
		t.Fatalf("sent at %.0f pps, faster than the %.0f asked", achieved, rate)
	}
}

func u32(ip []byte) uint32 {
	ip = ip[len(ip)-4:]
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
