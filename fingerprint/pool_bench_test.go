package fingerprint_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
)

// TestMain lets the benchmark re-run this binary as a holding server
// (REACH_HOLD_SERVER=1): it listens on loopback, prints its address,
// accepts every connection and never speaks, so the grabs' descriptors
// and the server's live in two processes. REACH_OUT_OF_FDS_CHILD=1 runs
// TestPoolOutOfDescriptors' child instead.
func TestMain(m *testing.M) {
	if os.Getenv("REACH_HOLD_SERVER") == "1" {
		raiseNoFile(12_000)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println(ln.Addr())
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(0)
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() // holds c, says nothing
		}
	}
	if os.Getenv("REACH_OUT_OF_FDS_CHILD") == "1" {
		os.Exit(outOfFDsChild())
	}
	os.Exit(m.Run())
}

func raiseNoFile(n uint64) uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < n {
		lim.Cur = min(lim.Max, n)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// BenchmarkPoolMemory holds 10,000 grabs in flight at once against a
// loopback server (this binary re-run as a child) that accepts and never
// speaks, so each grab waits in its greeting read, and reports the Go heap
// and goroutine stacks per grab.
func BenchmarkPoolMemory(b *testing.B) {
	const n = 10_000
	if got := raiseNoFile(n + 1000); got < n+1000 {
		b.Skipf("RLIMIT_NOFILE %d: need %d descriptors", got, n+1000)
	}
	self, _ := os.Executable()
	srv := exec.Command(self)
	srv.Env = append(os.Environ(), "REACH_HOLD_SERVER=1")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	to := strings.TrimSpace(line)
	var open atomic.Int64
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, to)
		if err == nil {
			open.Add(1)
		}
		return c, err
	}
	for b.Loop() {
		pool, err := fingerprint.NewPool(fingerprint.PoolConfig{Grabbers: registry.Grabbers(), Dial: dial,
			Workers: n, PerAddr: n, Timeout: 40 * time.Second, Greeting: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		batch := pool.Start(ctx)
		base := netip.MustParseAddr("198.51.100.1")
		for i := range n {
			// a port no grabber claims: the first step is the greeting read
			batch.Submit(fingerprint.Target{AddrPort: netip.AddrPortFrom(base, uint16(20000+i))}, nil)
		}
		for open.Load() < n {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapInuse) - float64(before.HeapInuse)
		stack := float64(after.StackInuse) - float64(before.StackInuse)
		b.ReportMetric(heap/n, "heap-B/grab")
		b.ReportMetric(stack/n, "stack-B/grab")
		b.ReportMetric((heap+stack)/(1<<20), "MiB/10k-grabs")
		cancel()
		batch.Wait()
		open.Store(0)
	}
}
