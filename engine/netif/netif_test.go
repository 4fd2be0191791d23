package netif

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseSourceIPs(t *testing.T) {
	tests := []struct {
		in    string
		first string
		n     int
		err   string
	}{
		{in: "198.18.0.1", first: "198.18.0.1", n: 1},
		{in: " 198.18.0.1-198.18.0.4 ", first: "198.18.0.1", n: 4},
		{in: "198.18.0.9-198.18.0.9", first: "198.18.0.9", n: 1},
		{in: "198.18.0.0-198.19.0.0", err: "more than 65536"},
		{in: "198.18.0.9-198.18.0.1", err: "a ≤ b"},
		{in: "2001:db8::1", err: "IPv4"},
		{in: "host.example", err: "IPv4"},
		{in: "198.18.0.1-", err: "a ≤ b"},
	}
	for _, tt := range tests {
		got, err := ParseSourceIPs(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || len(got) != tt.n || got[0] != netip.MustParseAddr(tt.first) {
			t.Errorf("%q: %v, %v", tt.in, got, err)
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1].Next() {
				t.Errorf("%q: not consecutive: %v", tt.in, got)
			}
		}
	}
}

// TestCheckPortRange uses the loopback address, which the kernel always
// owns, against this namespace's own ip_local_port_range.
func TestCheckPortRange(t *testing.T) {
	lo, hi, err := LocalPortRange()
	if err != nil {
		t.Skipf("no ip_local_port_range: %v", err)
	}
	owned := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if err := CheckPortRange(lo, lo, owned); !errors.Is(err, ErrPortOverlap) {
		t.Errorf("port %d inside %d-%d on an owned address: %v", lo, lo, hi, err)
	}
	if hi < 65535 {
		if err := CheckPortRange(hi+1, 65535, owned); err != nil {
			t.Errorf("ports above the range refused: %v", err)
		}
	}
	// an address the kernel does not own (a spoofed -S) cannot collide
	spoofed := []netip.Addr{netip.MustParseAddr("198.51.100.77")}
	if err := CheckPortRange(lo, hi, spoofed); err != nil {
		t.Errorf("spoofed source refused: %v", err)
	}
}
