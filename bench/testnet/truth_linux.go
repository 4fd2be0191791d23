package testnet

import (
	"fmt"
	"slices"

	"github.com/reachscan/reach/bench/responder"
	"github.com/reachscan/reach/engine/target"
)

// Answer is how the simulated network answers a SYN.
type Answer uint8

// Answers.
const (
	Silent Answer = iota // no answer at all
	Closed               // RST
	Open                 // SYN-ACK
)

func (a Answer) String() string { return [...]string{"silent", "closed", "open"}[a] }

// Truth is the simulated network's ground truth: the XDP responder's
// (bench/responder Open and Silent) and, with Servers, the real servers' of
// StartServers in ServerBlock, where the kernel answers every port no server
// listens on with an RST (the responder's AnswerButServers section leaves
// that block to them).
type Truth struct {
	Servers bool
}

// Answer is how the network answers a SYN to addr:port (host order).
func (t Truth) Answer(addr uint32, port uint16) Answer {
	if t.Servers && ServerBlock.Contains(target.Addr(addr)) {
		if _, ok := ServerAt(addr, port); ok {
			return Open
		}
		return Closed
	}
	switch {
	case responder.Silent(addr):
		return Silent
	case responder.Open(addr, port):
		return Open
	}
	return Closed
}

// Scope is what a scan probed: its address ranges × its ports.
type Scope struct {
	Ranges []target.Range // inclusive, host order
	Ports  []uint16
}

func (s Scope) contains(addr uint32, port uint16) bool {
	if !slices.Contains(s.Ports, port) {
		return false
	}
	for _, r := range s.Ranges {
		if addr >= r.First && addr <= r.Last {
			return true
		}
	}
	return false
}

// Report is one pair a scan reported: open, or closed (RST).
type Report struct {
	Addr uint32 // host order
	Port uint16
	Open bool
}

// Verdict is a scan's reports against the ground truth of its scope.
type Verdict struct {
	Answering  int // pairs of the scope the network answers (open or closed)
	Open       int // of those, the open ones
	Reported   int // distinct pairs reported
	Right      int // reported pairs the truth confirms (status included)
	RightOpen  int // open pairs reported open
	Wrong      int // reported pairs it contradicts: other status, a silent host, outside the scope
	Duplicates int // reports of a pair already reported
	// FirstWrong says what the first wrong report was, "" when none.
	FirstWrong string
}

// Verify compares a scan's reports with the ground truth t over scope. It
// is the one check of the tests, the demo and the benchmark harness.
func Verify(t Truth, scope Scope, reports []Report) Verdict {
	var v Verdict
	for _, r := range scope.Ranges {
		for a := uint64(r.First); a <= uint64(r.Last); a++ {
			for _, p := range scope.Ports {
				switch t.Answer(uint32(a), p) {
				case Open:
					v.Open++
					v.Answering++
				case Closed:
					v.Answering++
				}
			}
		}
	}
	seen := make(map[[2]uint32]bool, len(reports))
	for _, r := range reports {
		k := [2]uint32{r.Addr, uint32(r.Port)}
		if seen[k] {
			v.Duplicates++
			continue
		}
		seen[k] = true
		v.Reported++
		got, want := Closed, t.Answer(r.Addr, r.Port)
		if r.Open {
			got = Open
		}
		switch {
		case !scope.contains(r.Addr, r.Port):
			v.wrong(r, got, "outside the scan")
		case got != want:
			v.wrong(r, got, "the network is "+want.String()+" there")
		default:
			v.Right++
			if got == Open {
				v.RightOpen++
			}
		}
	}
	return v
}

func (v *Verdict) wrong(r Report, got Answer, why string) {
	if v.Wrong == 0 {
		v.FirstWrong = fmt.Sprintf("%s:%d reported %s, %s", target.Addr(r.Addr), r.Port, got, why)
	}
	v.Wrong++
}

// Exact reports whether the scan reported every answering pair of its
// scope once, with its status, and nothing else: precision and recall 1.
func (v Verdict) Exact() bool { return v.Wrong == 0 && v.Duplicates == 0 && v.Right == v.Answering }

// Recall is the share of open pairs reported open (1 when none is open).
func (v Verdict) Recall() float64 {
	if v.Open == 0 {
		return 1
	}
	return float64(v.RightOpen) / float64(v.Open)
}

func (v Verdict) String() string {
	s := fmt.Sprintf("%d of %d answering pairs reported right (%d of %d open), %d wrong, %d duplicates", v.Right, v.Answering, v.RightOpen, v.Open, v.Wrong, v.Duplicates)
	if v.FirstWrong != "" {
		s += "; first wrong: " + v.FirstWrong
	}
	return s
}
