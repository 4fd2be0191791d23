package results

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/export"
)

// hits is a fake hit source: n hits, every third one closed.
func hits(first, n int) []recv.Hit {
	out := make([]recv.Hit, n)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range out {
		j := first + i
		st := recv.Open
		if j%3 == 2 {
			st = recv.Closed
		}
		out[i] = recv.Hit{Addr: 0xC6130000 + uint32(j/4), Port: uint16(80 + j%4), Status: st, TTL: 64, Window: 64240,
			MSS: 1460, Time: t0.Add(time.Duration(j) * time.Millisecond)}
	}
	return out
}

func newFilePipeline(t *testing.T, path string, prior *Prior) *Pipeline {
	t.Helper()
	o := Output{Path: path, Commits: true, Closed: true, Run: export.RunID()}
	if prior != nil {
		o.Prior = prior.Parts
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Sinks: []Sink{s}, Closed: true, Prior: prior})
}

func pairsOf(t *testing.T, rows []export.Row) map[uint64]int {
	t.Helper()
	m := map[uint64]int{}
	for _, r := range rows {
		m[key(r.Addr, r.Port)]++
	}
	return m
}

// TestKilledThenResumed: a run commits twice and is then abandoned (as
// after kill -9: no Finish); its parts are readable files under the
// output's name holding exactly the committed rows. A resumed run that
// repeats the last probes (the checkpoint lag) writes none of them twice
// and folds the earlier parts into the output: one file with every pair
// once, in every format.
func TestKilledThenResumed(t *testing.T) {
	for _, f := range []export.Format{export.CSV, export.NDJSON, export.Parquet, export.Arrow} {
		t.Run(string(f), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scan"+f.Extension())
			all := hits(0, 1000)
			p := newFilePipeline(t, path, nil)
			for i := range all[:300] {
				p.Hit(&all[i])
			}
			if _, _, err := p.Commit(); err != nil {
				t.Fatal(err)
			}
			for i := range all[300:600] {
				p.Hit(&all[300+i])
			}
			_, record, err := p.Commit()
			if err != nil {
				t.Fatal(err)
			}
			for i := range all[600:700] { // after the last commit: lost with the process
				p.Hit(&all[600+i])
			}
			// the killed run left parts, no final file
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("final name exists after a kill: %v", err)
			}
			got, err := export.ReadFile(PartsDir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 600 {
				t.Fatalf("parts hold %d rows, want the 600 committed", len(got))
			}
			prior, err := LoadPrior(record)
			if err != nil {
				t.Fatal(err)
			}
			if prior.Len() != 600 {
				t.Fatalf("prior has %d pairs, want 600", prior.Len())
			}
			q := newFilePipeline(t, path, prior)
			for i := range all[500:] { // the resumed run repeats 500..599
				q.Hit(&all[500+i])
			}
			n, err := q.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if n.Repeats != 100 || n.Rows != 400 {
				t.Fatalf("resumed run: %d repeats, %d rows; want 100 and 400", n.Repeats, n.Rows)
			}
			rows, err := export.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m := pairsOf(t, rows)
			if len(rows) != 1000 || len(m) != 1000 {
				t.Fatalf("output holds %d rows, %d pairs; want every one of 1000 once", len(rows), len(m))
			}
			if _, err := os.Stat(PartsDir(path)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("parts directory left after the output was completed: %v", err)
			}
			var parts []Part
			if err := json.Unmarshal(q.Parts(), &parts); err != nil || len(parts) != 1 || parts[0].Path != path || parts[0].Rows != 1000 {
				t.Fatalf("final record %s, %v; want the one complete file", q.Parts(), err)
			}
		})
	}
}

// TestDatasetKilledThenResumed: the same for -o DIR/, where the parts are
// the dataset.
func TestDatasetKilledThenResumed(t *testing.T) {
	dir := t.TempDir() + "/ds/"
	all := hits(0, 500)
	p := newFilePipeline(t, dir, nil)
	for i := range all[:200] {
		p.Hit(&all[i])
	}
	_, record, err := p.Commit()
	if err != nil {
		t.Fatal(err)
	}
	for i := range all[200:250] {
		p.Hit(&all[200+i]) // lost
	}
	prior, err := LoadPrior(record)
	if err != nil {
		t.Fatal(err)
	}
	q := newFilePipeline(t, dir, prior)
	for i := range all[150:] {
		q.Hit(&all[150+i])
	}
	if _, err := q.Finish(); err != nil {
		t.Fatal(err)
	}
	rows, err := export.ReadFile(strings.TrimSuffix(dir, "/"))
	if err != nil {
		t.Fatal(err)
	}
	if m := pairsOf(t, rows); len(rows) != 500 || len(m) != 500 {
		t.Fatalf("dataset holds %d rows, %d pairs; want 500 once each", len(rows), len(m))
	}
	if tmps, _ := filepath.Glob(dir + "date=*/*.tmp"); len(tmps) != 1 {
		// the killed run's open part stays as its unique temporary name
		t.Fatalf("temporary files %v; want the killed run's one", tmps)
	}
}

// TestNoCommitsWritesOneFile: without a checkpoint the output is written
// straight to its temporary name and renamed at the end: no parts.
func TestNoCommitsWritesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scan.parquet")
	s, err := Open(Output{Path: path, Run: export.RunID()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Sinks: []Sink{s}})
	all := hits(0, 99)
	for i := range all {
		p.Hit(&all[i])
	}
	if _, err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	rows, err := export.ReadFile(path)
	if err != nil || len(rows) != 66 {
		t.Fatalf("%d rows, %v; want the 66 open", len(rows), err)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}

// TestAbortLeavesTheOldFile: a scan that fails before its first probe
// leaves an earlier output byte for byte as it was.
func TestAbortLeavesTheOldFile(t *testing.T) {
	for _, commits := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "scan.csv")
		if err := os.WriteFile(path, []byte("earlier results\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Output{Path: path, Commits: commits, Run: export.RunID()})
		if err != nil {
			t.Fatal(err)
		}
		New(Config{Sinks: []Sink{s}}).Abort()
		if b, err := os.ReadFile(path); err != nil || string(b) != "earlier results\n" {
			t.Fatalf("commits %v: %q, %v", commits, b, err)
		}
		if m, _ := os.ReadDir(dir); len(m) != 1 {
			t.Fatalf("commits %v: %d entries left, want only the earlier file", commits, len(m))
		}
	}
}

// failSink fails its n-th write.
type failSink struct {
	n, writes int
	closed    bool
}

var errDiskFull = errors.New("no space left on device")

func (f *failSink) Write(*export.Row) error {
	if f.writes++; f.writes >= f.n {
		return errDiskFull
	}
	return nil
}
func (f *failSink) Commit() error { return nil }
func (f *failSink) Flush() error  { return nil }
func (f *failSink) Parts() []Part { return nil }
func (f *failSink) Close() error  { f.closed = true; return nil }
func (f *failSink) Abort()        {}

// TestWriteFailureStops: the first failing write closes Failed, the rows
// after it are counted as lost, Commit reports the failure, and Finish
// aborts the other outputs instead of completing them.
func TestWriteFailureStops(t *testing.T) {
	bad := &failSink{n: 5}
	path := filepath.Join(t.TempDir(), "scan.jsonl")
	good, err := Open(Output{Path: path, Run: export.RunID()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Sinks: []Sink{bad, good}, Closed: true})
	all := hits(0, 10)
	for i := range all {
		p.Hit(&all[i])
	}
	select {
	case <-p.Failed():
	default:
		t.Fatal("Failed not closed after a failed write")
	}
	if _, _, err := p.Commit(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Commit: %v, want the write failure", err)
	}
	n, err := p.Finish()
	if !errors.Is(err, errDiskFull) || n.Rows != 4 || n.Lost != 6 {
		t.Fatalf("Finish: %v, %d rows, %d lost; want the failure, 4 and 6", err, n.Rows, n.Lost)
	}
	if bad.closed {
		t.Fatal("a failed output was completed")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the other output was completed after a failure: %v", err)
	}
}

// TestFIFOStaysAFIFO: a FIFO named by -o is written in place and receives
// rows while they come (before Finish), and is still a FIFO afterwards.
func TestFIFOStaysAFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			close(lines)
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	s, err := Open(Output{Path: path, Run: export.RunID()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Sinks: []Sink{s}, FlushEvery: 10 * time.Millisecond})
	h := hits(0, 1)
	p.Hit(&h[0])
	select {
	case l := <-lines:
		if !strings.Contains(l, `"ip":"198.19.0.0"`) {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no row reached the FIFO while the pipeline ran")
	}
	if _, err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("after the scan %s is %v, %v; want the FIFO", path, st.Mode(), err)
	}
}

// TestPendingHoldsTheSafeTime: a hit still being grabbed holds the commit's
// safe time at its arrival; once done, the next oldest (or now) counts.
func TestPendingHoldsTheSafeTime(t *testing.T) {
	var q pendingQueue
	t0 := time.Unix(1000, 0)
	a := q.add(t0)
	b := q.add(t0.Add(time.Second))
	if got, ok := q.oldest(); !ok || !got.Equal(t0) {
		t.Fatalf("oldest %v %v, want %v", got, ok, t0)
	}
	q.finish(a)
	if got, ok := q.oldest(); !ok || !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("oldest after the first is done: %v %v", got, ok)
	}
	q.finish(b)
	if _, ok := q.oldest(); ok {
		t.Fatal("nothing pending, yet an oldest")
	}
	// compaction keeps indexes valid
	var idx []int
	for i := range 5000 {
		idx = append(idx, q.add(t0.Add(time.Duration(i))))
	}
	for _, i := range idx[:4000] {
		q.finish(i)
	}
	q.oldest()
	if got, _ := q.oldest(); !got.Equal(t0.Add(4000)) {
		t.Fatalf("after compaction oldest %v", got)
	}
	q.finish(idx[4000])
	if got, _ := q.oldest(); !got.Equal(t0.Add(4001)) {
		t.Fatalf("index after compaction: oldest %v", got)
	}
}

// TestGrabLineEscapes: what a server calls itself cannot move the cursor
// or recolour the terminal.
func TestGrabLineEscapes(t *testing.T) {
	r := export.Row{Addr: 0xC6130001, Port: 22, Status: export.StatusOpen, Service: "ssh", Product: "Open\x1b[2J\x1b]0;pwned\aSSH", Version: "9\r\n", GrabStatus: "success"}
	l := GrabLine(&r)
	if strings.ContainsAny(strings.TrimSuffix(l, "\n"), "\x1b\a\r\n") {
		t.Fatalf("control characters reach the terminal: %q", l)
	}
	if !strings.HasPrefix(l, `198.19.0.1,22,ssh,`) {
		t.Fatalf("line %q", l)
	}
}

// TestURLOutputRefused: an object-storage URL is refused, not written as a
// local directory named "s3:".
func TestURLOutputRefused(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, p := range []string{"s3://bucket/scans/", "gs://b/x.parquet"} {
		if _, err := Open(Output{Path: p, Run: export.RunID()}); err == nil || !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("%s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused outputs left %d entries", len(ents))
	}
}
