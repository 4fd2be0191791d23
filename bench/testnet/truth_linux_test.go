package testnet

import (
	"slices"
	"testing"

	"github.com/reachscan/reach/engine/target"
)

// TestTruthAnswer pins the ground truth at addresses worked out by hand
// from the responder's rule (silent when addr mod 11 = 0; 22, 80, 443, 3306,
// 5432, 6379, 8080 open unless addr mod 7 = 0) and the servers' table.
func TestTruthAnswer(t *testing.T) {
	tests := []struct {
		addr    uint32
		port    uint16
		servers bool
		want    Answer
	}{
		{0xC6130001, 22, false, Open},     // 198.19.0.1: mod 11 = 7, mod 7 = 6
		{0xC6130001, 9999, false, Closed}, // not a responder port
		{0xC6130002, 22, false, Closed},   // 198.19.0.2: mod 7 = 0
		{0xC6130005, 22, false, Silent},   // 198.19.0.5: mod 11 = 0
		{0xC6130102, 22, false, Silent},   // 198.19.1.2: mod 11 = 0 for the responder…
		{0xC6130102, 22, true, Open},      // …but sshd listens there
		{0xC6130102, 80, true, Closed},    // and the kernel RSTs the rest
		{0xC6130101, 10080, true, Open},   // nginx on an unusual port
		{0xC6130103, 7000, true, Open},    // redis, forwarded
		{0xC6130106, 22, true, Closed},    // no server at 198.19.1.6
	}
	for _, tt := range tests {
		if got := (Truth{Servers: tt.servers}).Answer(tt.addr, tt.port); got != tt.want {
			t.Errorf("%s:%d (servers %v): %v, want %v", target.Addr(tt.addr), tt.port, tt.servers, got, tt.want)
		}
	}
}

// TestVerify: each way a scan can be wrong moves exactly its counter.
func TestVerify(t *testing.T) {
	scope := Scope{Ranges: []target.Range{{First: 0xC6130000, Last: 0xC613001F}}, Ports: []uint16{22, 9999}}
	var exact, openOnly []Report
	for a := uint32(0xC6130000); a <= 0xC613001F; a++ {
		for _, p := range scope.Ports {
			switch (Truth{}).Answer(a, p) {
			case Open:
				exact = append(exact, Report{a, p, true})
				openOnly = append(openOnly, Report{a, p, true})
			case Closed:
				exact = append(exact, Report{a, p, false})
			}
		}
	}
	// 32 addresses: 3 silent (…00 mod 11: .5, .16, .27), 29 answering on
	// both ports; port 22 open on the 25 of them not ≡ 0 mod 7
	base := Verdict{Answering: 58, Open: 25, Reported: 58, Right: 58, RightOpen: 25}
	with := func(edit func(v *Verdict)) Verdict { v := base; edit(&v); return v }
	openPair, closedPair := Report{0xC6130001, 22, true}, Report{0xC6130001, 9999, false}
	tests := []struct {
		name    string
		reports []Report
		want    Verdict
		exact   bool
	}{
		{"exact", exact, base, true},
		{"an open pair missing", without(exact, openPair), with(func(v *Verdict) { v.Reported--; v.Right--; v.RightOpen-- }), false},
		{"a closed pair missing", without(exact, closedPair), with(func(v *Verdict) { v.Reported--; v.Right-- }), false},
		{"a closed pair reported open", plus(without(exact, closedPair), Report{0xC6130001, 9999, true}),
			with(func(v *Verdict) {
				v.Right--
				v.Wrong++
				v.FirstWrong = "198.19.0.1:9999 reported open, the network is closed there"
			}), false},
		{"a silent host reported", plus(exact, Report{0xC6130005, 22, false}),
			with(func(v *Verdict) {
				v.Reported++
				v.Wrong++
				v.FirstWrong = "198.19.0.5:22 reported closed, the network is silent there"
			}), false},
		{"outside the scan", plus(exact, Report{0xC6130101, 22, true}),
			with(func(v *Verdict) {
				v.Reported++
				v.Wrong++
				v.FirstWrong = "198.19.1.1:22 reported open, outside the scan"
			}), false},
		{"a duplicate", plus(exact, openPair), with(func(v *Verdict) { v.Duplicates++ }), false},
		{"open pairs only", openOnly, with(func(v *Verdict) { v.Reported, v.Right = 25, 25 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Verify(Truth{}, scope, tt.reports)
			if v != tt.want || v.Exact() != tt.exact {
				t.Fatalf("got  %#v (exact %v)\nwant %#v (exact %v)", v, v.Exact(), tt.want, tt.exact)
			}
		})
	}
	if r := Verify(Truth{}, scope, without(exact, openPair)).Recall(); r != 24.0/25 {
		t.Errorf("recall with one open pair missing = %v, want 24/25", r)
	}
}

func without(rs []Report, drop Report) []Report {
	var out []Report
	for _, r := range rs {
		if r != drop {
			out = append(out, r)
		}
	}
	return out
}

// plus returns a copy of rs with r added (never rs's own array).
func plus(rs []Report, r Report) []Report { return append(slices.Clone(rs), r) }
