package bench

import "testing"

// TestRecallScope: a recall run scans all of 198.19.0.0/16 on port 80.
func TestRecallScope(t *testing.T) {
	s, probes := recallScope()
	if len(s.Ranges) != 1 || s.Ranges[0].First != 0xC6130000 || s.Ranges[0].Last != 0xC613FFFF || probes != 65536 || len(s.Ports) != 1 || s.Ports[0] != 80 {
		t.Fatalf("scope %+v, %d probes; want 198.19.0.0-198.19.255.255 × 80, 65536", s, probes)
	}
}
