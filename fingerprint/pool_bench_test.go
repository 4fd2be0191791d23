package fingerprint_test

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/registry"
)

// BenchmarkPoolMemory holds 10,000 grabs in flight at once against a
// loopback server that accepts and never speaks (each grab waits in its
// greeting read), and reports the Go heap and goroutine stacks per grab.
// Both ends live in this process, so it needs 20,000+ file descriptors; it
// raises RLIMIT_NOFILE up to the hard limit and skips when that is short.
func BenchmarkPoolMemory(b *testing.B) {
	const n = 10_000
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < 2*n+100 {
		lim.Cur = min(lim.Max, 2*n+1000)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < 2*n+100 {
		b.Skipf("RLIMIT_NOFILE %d: need %d descriptors", lim.Cur, 2*n+100)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var open atomic.Int64
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // silent: the grab waits for a greeting
			mu.Unlock()
			open.Add(1)
		}
	}()
	to := ln.Addr().String()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, to)
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
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		held = held[:0]
		mu.Unlock()
		open.Store(0)
	}
}
