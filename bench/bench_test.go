package bench

import (
	"math"
	"testing"
)

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(string) (map[pair]bool, int, error)
		path  string
		want  []pair
		dups  int
	}{
		// ZMap -f saddr: a header, one address per SYN-ACK, repeats kept
		{"zmap", func(p string) (map[pair]bool, int, error) { return parseZMap(p, 80) }, "testdata/zmap.csv",
			[]pair{{0xC6130001, 80}, {0xC6130002, 80}}, 1},
		// masscan's stdout: banner lines, then one line per SYN-ACK
		{"masscan", parseMasscan, "testdata/masscan.txt",
			[]pair{{0xC6130001, 80}, {0xC6130002, 443}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, dups, err := tc.parse(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if len(open) != len(tc.want) || dups != tc.dups {
				t.Fatalf("got %v with %d duplicates, want %v with %d", open, dups, tc.want, tc.dups)
			}
			for _, p := range tc.want {
				if !open[p] {
					t.Errorf("%v missing from %v", p, open)
				}
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	runs := []Run{
		{Mode: ModeSink, Tool: Reach, Threads: 2, RateAchieved: 800, CPUPerM: 2},
		{Mode: ModeSink, Tool: ZMap, Threads: 2, RateAchieved: 400, CPUPerM: 3},
		{Mode: ModeSink, Tool: Masscan, Threads: 1, RateAchieved: 500, CPUPerM: 3},
		{Mode: ModeSink, Tool: Reach, Threads: 2, RateAchieved: 600, CPUPerM: 2},
		{Mode: ModeSink, Tool: ZMap, Threads: 2, RateAchieved: 200, CPUPerM: 3},
		{Mode: ModeSink, Tool: Masscan, Threads: 1, Error: "failed"},
		{Mode: ModeSink, Tool: Reach, Threads: 2, RateAchieved: 700, CPUPerM: 2},
		{Mode: ModeSink, Tool: ZMap, Threads: 2, RateAchieved: 300, CPUPerM: 3},
		{Mode: ModeIdle, Tool: Reach, Threads: 1, RateAsked: 10, CPUPerM: 2},
		{Mode: ModeIdle, Tool: ZMap, Threads: 1, RateAsked: 10, CPUPerM: 50},
		{Mode: ModeRecall, Tool: Reach, Threads: 1, RateAsked: 10, Recall: 1},
		{Mode: ModeRecall, Tool: Masscan, Threads: 1, RateAsked: 10, Recall: 0.8},
	}
	s := summarise(runs)
	if len(s) != 7 {
		t.Fatalf("%d summaries, want 7: %+v", len(s), s)
	}
	r := s[0]
	if r.Tool != Reach || r.Runs != 3 || r.Rate != (Stat{600, 700, 800}) {
		t.Errorf("reach sink: %+v", r)
	}
	// reach with 2 threads is compared with masscan's single thread
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(r.Ratios[ZMap], 700.0/300) || !near(r.Ratios[Masscan], 700.0/500) {
		t.Errorf("sink ratios %v, want zmap 2.333 masscan 1.4", r.Ratios)
	}
	// a failed run counts, but not in the statistics
	if m := s[2]; m.Tool != Masscan || m.Runs != 2 || m.Failed != 1 || m.Rate != (Stat{500, 500, 500}) {
		t.Errorf("masscan T1: %+v", m)
	}
	if idle := s[3]; idle.Tool != Reach || !near(idle.Ratios[ZMap], 25) {
		t.Errorf("idle ratio %v, want ZMap's CPU per probe 25× reach's", idle.Ratios)
	}
	if rec := s[5]; rec.Tool != Reach || rec.Recall == nil || !near(rec.Ratios[Masscan], 1.25) {
		t.Errorf("recall summary %+v", rec)
	}
}
