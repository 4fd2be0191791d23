package exposure

import (
	"strings"
	"testing"

	"github.com/reachscan/reach/export"
)

// proxyRows are n open rows of addr, the first k with signature a and the
// rest with b.
func proxyRows(addr uint32, n, k int, a, b Signature) []export.Row {
	rows := make([]export.Row, n)
	for i := range rows {
		s := b
		if i < k {
			s = a
		}
		rows[i] = export.Row{Addr: addr, Port: uint16(1000 + i), Status: export.StatusOpen, TTL: s.TTL, Window: s.Window, MSS: s.MSS}
	}
	return rows
}

func TestDetectProxies(t *testing.T) {
	tarpit := Signature{TTL: 61, Window: 0}
	linux := Signature{TTL: 61, Window: 64240, MSS: 1460}
	for _, tt := range []struct {
		name string
		rows []export.Row
		want bool
	}{
		{"64 ports, one signature", proxyRows(1, 64, 64, tarpit, linux), true},
		{"63 ports, one signature: below the port threshold", proxyRows(1, 63, 63, tarpit, linux), false},
		{"100 ports, 90 alike", proxyRows(1, 100, 90, tarpit, linux), true},
		{"100 ports, 89 alike: several stacks answer", proxyRows(1, 100, 89, tarpit, linux), false},
		{"100 ports, the common signature second", proxyRows(1, 100, 5, linux, tarpit), true},
	} {
		got := DetectProxies(tt.rows)
		if _, ok := got[1]; ok != tt.want {
			t.Errorf("%s: proxy %v, want %v", tt.name, ok, tt.want)
		}
	}
	// closed rows do not count
	rows := proxyRows(1, 100, 100, tarpit, linux)
	for i := range rows {
		rows[i].Status = export.StatusClosed
	}
	if len(DetectProxies(rows)) != 0 {
		t.Error("closed rows made a proxy")
	}
}

// TestReviewCollapsesProxies: a SYN proxy's ports are no findings; the
// review names the address once and its rows are marked syn-proxy.
func TestReviewCollapsesProxies(t *testing.T) {
	rows := append(proxyRows(ip("198.19.7.7"), 200, 200, Signature{TTL: 61, Window: 0}, Signature{}),
		export.Row{Addr: ip("198.19.1.3"), Port: 6379, Status: export.StatusOpen, Service: "redis", Product: "Redis", Auth: "none"})
	rep := Review(rows, nil)
	if len(rep.Findings) != 1 || rep.Hosts != 1 || len(rep.Proxies) != 1 || rep.Proxies[0].Ports != 200 || len(rep.Proxies[0].Rows) != 200 {
		t.Fatalf("%d findings on %d hosts, proxies %+v; want the Redis finding and one proxy of 200 ports", len(rep.Findings), rep.Hosts, rep.Proxies)
	}
	var b strings.Builder
	if err := WriteText(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "198.19.7.7 answers every port alike (SYN proxy or tarpit): its 200 open ports are not listed") ||
		strings.Contains(b.String(), "198.19.7.7:") {
		t.Errorf("review text lists the proxy's ports or not the proxy:\n%s", b.String())
	}
	out := rep.Rows()
	marked := 0
	for _, r := range out {
		if r.Finding == string(SynProxy) {
			marked++
		}
	}
	if len(out) != 201 || marked != 200 {
		t.Errorf("%d rows, %d marked syn-proxy; want 201 and 200", len(out), marked)
	}
}
