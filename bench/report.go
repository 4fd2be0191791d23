package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Report is everything one harness invocation measured.
type Report struct {
	Started  time.Time         `json:"started"`
	Commit   string            `json:"commit,omitempty"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Runs     []Run             `json:"runs"`
	Summary  []Summary         `json:"summary"`
}

// Failed counts the runs that ended in an error.
func (r *Report) Failed() int {
	n := 0
	for _, x := range r.Runs {
		if x.Error != "" {
			n++
		}
	}
	return n
}

// Machine describes the host the figures come from.
type Machine struct {
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu_model"`
}

// Stat is the min, median and max of one measure over a configuration's
// runs.
type Stat struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Summary is one configuration (mode, tool, threads, rate asked) over its
// successful runs, with reach's ratios against each peer measured in the
// same invocation (reach's median over the peer's).
type Summary struct {
	Mode       string             `json:"mode"`
	Tool       string             `json:"tool"`
	Threads    int                `json:"threads"`
	RateAsked  int                `json:"rate_asked_pps"`
	Runs       int                `json:"runs"`
	Failed     int                `json:"failed"`
	Rate       Stat               `json:"rate_achieved_pps"`
	CPUPerM    Stat               `json:"cpu_seconds_per_million_probes"`
	Recall     *Stat              `json:"recall,omitempty"`
	FalsePos   int                `json:"false_positives_max"`
	Duplicates int                `json:"duplicates_max"`
	SendDrops  uint64             `json:"send_drops_max"`
	Ratios     map[string]float64 `json:"ratios,omitempty"`
}

func stat(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Min: s[0], Median: m, Max: s[len(s)-1]}
}

type key struct {
	mode    string
	tool    string
	threads int
	rate    int
}

// summarise groups runs by configuration, in first-seen order, and adds
// reach's ratios: send rate in sink mode (higher is better for reach when
// above 1), recall in recall mode, and CPU per million probes in idle mode
// (the peer's over reach's, so above 1 also means reach does better).
// masscan has one transmit thread, so reach with N threads is compared with
// masscan's only configuration.
func summarise(runs []Run) []Summary {
	var order []key
	groups := map[key][]Run{}
	for _, r := range runs {
		k := key{r.Mode, r.Tool, r.Threads, r.RateAsked}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	byKey := map[key]*Summary{}
	var out []Summary
	for _, k := range order {
		s := Summary{Mode: k.mode, Tool: k.tool, Threads: k.threads, RateAsked: k.rate}
		var rate, cpu, rec []float64
		for _, r := range groups[k] {
			s.Runs++
			if r.Error != "" {
				s.Failed++
				continue
			}
			rate = append(rate, r.RateAchieved)
			cpu = append(cpu, r.CPUPerM)
			if r.Mode == ModeRecall {
				rec = append(rec, r.Recall)
			}
			s.FalsePos = max(s.FalsePos, r.FalsePositives)
			s.Duplicates = max(s.Duplicates, r.Duplicates)
			s.SendDrops = max(s.SendDrops, r.SendDrops)
		}
		s.Rate, s.CPUPerM = stat(rate), stat(cpu)
		if k.mode == ModeRecall {
			st := stat(rec)
			s.Recall = &st
		}
		out = append(out, s)
	}
	for i := range out {
		s := &out[i]
		byKey[key{s.Mode, s.Tool, s.Threads, s.RateAsked}] = s
	}
	for i := range out {
		s := &out[i]
		if s.Tool != Reach || s.Runs == s.Failed {
			continue
		}
		for _, p := range peers {
			ps := byKey[key{s.Mode, p, s.Threads, s.RateAsked}]
			if ps == nil && p == Masscan && s.Mode == ModeSink {
				ps = byKey[key{s.Mode, p, 1, s.RateAsked}]
			}
			if ps == nil || ps.Runs == ps.Failed {
				continue
			}
			var r float64
			switch s.Mode {
			case ModeSink:
				r = ratio(s.Rate.Median, ps.Rate.Median)
			case ModeRecall:
				r = ratio(s.Recall.Median, ps.Recall.Median)
			case ModeIdle:
				r = ratio(ps.CPUPerM.Median, s.CPUPerM.Median)
			}
			if r > 0 {
				if s.Ratios == nil {
					s.Ratios = map[string]float64{}
				}
				s.Ratios[p] = r
			}
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func rateText(pps int) string {
	if pps == 0 {
		return "max"
	}
	if pps%1000 == 0 {
		return fmt.Sprintf("%dk", pps/1000)
	}
	return fmt.Sprint(pps)
}

// WriteTable prints the summary as an aligned table: one line per
// configuration with medians and [min–max] ranges.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "reach bench, %s; %d cores, %s, kernel %s\n", r.Started.Format(time.RFC3339), r.Machine.Cores, r.Machine.CPU, r.Machine.Kernel)
	var tools []string
	for t, v := range r.Versions {
		tools = append(tools, t+" "+v)
	}
	sort.Strings(tools)
	fmt.Fprintf(w, "versions: %s\n", strings.Join(tools, "; "))
	fmt.Fprintln(w, "rates are medians [min–max] of the runs; recall is the share of ground-truth open pairs reported;")
	fmt.Fprintln(w, "false+, dups and send drops (probes the scanner's veth dropped on transmit) are the worst run's")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\ttool\tthreads\trate asked\trate achieved (pps)\trecall\tfalse+\tdups\tsend drops\tCPU-s per M probes\tvs ZMap\tvs masscan\truns")
	for _, s := range r.Summary {
		rec, fp, dups, drops := "—", "—", "—", "—"
		if s.Recall != nil && s.Runs > s.Failed {
			rec = fmt.Sprintf("%.4f [%.4f–%.4f]", s.Recall.Median, s.Recall.Min, s.Recall.Max)
			fp, dups, drops = fmt.Sprint(s.FalsePos), fmt.Sprint(s.Duplicates), fmt.Sprint(s.SendDrops)
		}
		rate, cpu := "failed", "—"
		if s.Runs > s.Failed {
			rate = fmt.Sprintf("%s [%s–%s]", pps(s.Rate.Median), pps(s.Rate.Min), pps(s.Rate.Max))
			cpu = fmt.Sprintf("%.2f", s.CPUPerM.Median)
		}
		vz, vm := "", ""
		if v, ok := s.Ratios[ZMap]; ok {
			vz = fmt.Sprintf("%.2f×", v)
		}
		if v, ok := s.Ratios[Masscan]; ok {
			vm = fmt.Sprintf("%.2f×", v)
		}
		runs := fmt.Sprint(s.Runs)
		if s.Failed > 0 {
			runs = fmt.Sprintf("%d (%d failed)", s.Runs, s.Failed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Mode, s.Tool, s.Threads, rateText(s.RateAsked), rate, rec, fp, dups, drops, cpu, vz, vm, runs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "ratios: sink = reach's send rate over the peer's; recall = reach's recall over the peer's; idle = the peer's CPU per probe over reach's (above 1: reach is better)")
	return nil
}

func pps(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// machine describes this host: cores, kernel release and CPU model.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), CPU: "unknown", Kernel: "unknown"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
