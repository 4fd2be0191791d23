package results

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/reachscan/reach/export"
)

// Part is one committed file of an output: complete, valid and durable
// (fsynced and renamed) when recorded. A checkpoint lists the parts of every
// run of a scan, so a resumed run skips the pairs they hold and folds the
// parts of its own output into the final file.
type Part struct {
	Path   string        `json:"path"` // absolute
	Format export.Format `json:"format"`
	Rows   int64         `json:"rows"`
}

// Sink receives rows. Write and Commit are called under the pipeline's lock.
type Sink interface {
	Write(r *export.Row) error
	// Commit makes every row written so far durable.
	Commit() error
	// Flush hands buffered rows to a stream or a terminal (files: nothing).
	Flush() error
	// Parts are the committed files that hold this sink's rows so far.
	Parts() []Part
	// Close completes the output under its final name.
	Close() error
	// Abort drops what is not committed; final names stay as they were.
	Abort()
}

// PartsDir is where the committed parts of output path live until the
// output is complete: NAME.parts/.
func PartsDir(path string) string { return path + ".parts" }

// segment is one file being written: an encoder on an OutputFile.
type segment struct {
	of   *export.OutputFile
	enc  export.Encoder
	rows int64
}

func openSegment(path string, f export.Format, keep export.Fields, stdout io.Writer) (*segment, error) {
	of, err := export.OpenFile(path, stdout)
	if err != nil {
		return nil, err
	}
	enc, err := export.NewEncoder(of, f, keep)
	if err != nil {
		of.Abort()
		return nil, err
	}
	return &segment{of: of, enc: enc}, nil
}

// close completes the segment under its final name.
func (s *segment) close() error {
	if err := s.enc.Close(); err != nil {
		s.of.Abort()
		return fmt.Errorf("write %s: %w", s.of.Name(), err)
	}
	return s.of.Commit()
}

// fileSink writes one file, NAME. Without commits it writes NAME's
// temporary file directly. With commits (a checkpoint is kept) every commit
// closes the rows so far as NAME.parts/part-RUN-NNNNN.EXT, and Close folds
// the parts (and those of earlier runs of the scan, adopted) into NAME.
type fileSink struct {
	path    string
	format  export.Format
	run     string
	commits bool
	seq     int
	cur     *segment
	own     []Part // this run's committed parts
	adopted []Part // earlier runs' parts of this output, folded in at Close
	final   *Part  // set once Close has written NAME
	madeDir bool
	keep    export.Fields
}

func newFileSink(path string, f export.Format, keep export.Fields, run string, commits bool, prior []Part) (*fileSink, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	s := &fileSink{path: abs, format: f, run: run, commits: commits, keep: keep}
	for _, p := range prior {
		if p.Path == abs || filepath.Dir(p.Path) == PartsDir(abs) {
			if p.Format != f {
				return nil, fmt.Errorf("output %s: the run this one resumes wrote it as %s, not %s", path, p.Format, f)
			}
			s.adopted = append(s.adopted, p)
		}
	}
	if !commits {
		// check the path now, before the first probe
		if s.cur, err = openSegment(abs, f, s.keep, nil); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := s.mkdir(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *fileSink) mkdir() error {
	dir := PartsDir(s.path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create output parts: %w", err)
		}
		s.madeDir = true
	}
	return nil
}

func (s *fileSink) Write(r *export.Row) error {
	if s.cur == nil {
		name := filepath.Join(PartsDir(s.path), fmt.Sprintf("part-%s-%05d%s", s.run, s.seq, s.format.Extension()))
		cur, err := openSegment(name, s.format, s.keep, nil)
		if err != nil {
			return err
		}
		s.cur = cur
		s.seq++
	}
	s.cur.rows++
	return s.cur.enc.Write(r)
}

func (s *fileSink) Commit() error {
	if !s.commits || s.cur == nil || s.cur.rows == 0 {
		return nil
	}
	cur := s.cur
	s.cur = nil
	if err := cur.close(); err != nil {
		return err
	}
	s.own = append(s.own, Part{Path: cur.of.Name(), Format: s.format, Rows: cur.rows})
	return nil
}

func (s *fileSink) Flush() error { return nil }

func (s *fileSink) Parts() []Part {
	if s.final != nil {
		return []Part{*s.final}
	}
	return append(append([]Part{}, s.adopted...), s.own...)
}

func (s *fileSink) Close() error {
	if !s.commits {
		if err := s.cur.close(); err != nil {
			return err
		}
		s.final = &Part{Path: s.path, Format: s.format, Rows: s.cur.rows}
		s.cur = nil
		return nil
	}
	if err := s.Commit(); err != nil {
		return err
	}
	parts := append(append([]Part{}, s.adopted...), s.own...)
	var rows int64
	if len(parts) == 1 && len(s.adopted) == 0 {
		// one part: it becomes the output as it is
		if err := os.Rename(parts[0].Path, s.path); err != nil {
			return fmt.Errorf("complete %s: %w", s.path, err)
		}
		rows = parts[0].Rows
	} else {
		out, err := openSegment(s.path, s.format, s.keep, nil)
		if err != nil {
			return err
		}
		for _, p := range parts {
			n, err := copyRows(out.enc, p.Path)
			if err != nil {
				out.of.Abort()
				return fmt.Errorf("complete %s: %w", s.path, err)
			}
			rows += n
		}
		if err := out.close(); err != nil {
			return err
		}
	}
	if err := export.SyncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	s.final = &Part{Path: s.path, Format: s.format, Rows: rows}
	for _, p := range parts {
		if p.Path != s.path {
			os.Remove(p.Path)
		}
	}
	for _, p := range s.adopted {
		// the part a killed earlier run had open
		if run, ok := runOf(p.Path); ok {
			stale, _ := filepath.Glob(filepath.Join(PartsDir(s.path), "part-"+run+"-*.tmp"))
			for _, f := range stale {
				os.Remove(f)
			}
		}
	}
	os.Remove(PartsDir(s.path)) // only when empty
	return nil
}

func (s *fileSink) Abort() {
	if s.cur != nil {
		s.cur.of.Abort()
		s.cur = nil
	}
	if s.madeDir {
		os.Remove(PartsDir(s.path)) // only when empty: committed parts stay
	}
}

// copyRows writes every row of the reach output at path to enc.
func copyRows(enc export.Encoder, path string) (int64, error) {
	rows, err := export.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for i := range rows {
		if err := enc.Write(&rows[i]); err != nil {
			return 0, err
		}
	}
	return int64(len(rows)), nil
}

// datasetSink writes a partitioned Parquet dataset,
// DIR/date=YYYY-MM-DD/part-RUN-NNNNN.parquet: every commit (and every
// partRows rows, and every change of day) completes a part.
type datasetSink struct {
	dir     string
	run     string
	seq     int
	day     string
	cur     *segment
	commits bool
	own     []Part
	keep    export.Fields
}

// partRows is the most rows one part of a dataset holds.
const partRows = 4 << 20

func newDatasetSink(dir string, keep export.Fields, run string, commits bool) (*datasetSink, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	return &datasetSink{dir: abs, run: run, commits: commits, keep: keep}, nil
}

func (d *datasetSink) Write(r *export.Row) error {
	day := r.Time.UTC().Format("2006-01-02")
	if d.cur != nil && (day != d.day || d.cur.rows >= partRows) {
		if err := d.complete(); err != nil {
			return err
		}
	}
	if d.cur == nil {
		sub := filepath.Join(d.dir, "date="+day)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("create partition: %w", err)
		}
		cur, err := openSegment(filepath.Join(sub, fmt.Sprintf("part-%s-%05d.parquet", d.run, d.seq)), export.Parquet, d.keep, nil)
		if err != nil {
			return err
		}
		d.cur, d.day = cur, day
		d.seq++
	}
	d.cur.rows++
	return d.cur.enc.Write(r)
}

func (d *datasetSink) complete() error {
	cur := d.cur
	d.cur = nil
	if err := cur.close(); err != nil {
		return err
	}
	d.own = append(d.own, Part{Path: cur.of.Name(), Format: export.Parquet, Rows: cur.rows})
	return nil
}

func (d *datasetSink) Commit() error {
	if !d.commits || d.cur == nil {
		return nil
	}
	return d.complete()
}

func (d *datasetSink) Flush() error  { return nil }
func (d *datasetSink) Parts() []Part { return append([]Part{}, d.own...) }

func (d *datasetSink) Close() error {
	if d.cur == nil {
		return nil
	}
	return d.complete()
}

func (d *datasetSink) Abort() {
	if d.cur != nil {
		d.cur.of.Abort()
		d.cur = nil
	}
}

// streamSink writes a stream in place (stdout, a FIFO, a device): rows are
// flushed as they come, nothing is committed to disk.
type streamSink struct{ seg *segment }

func (s *streamSink) Write(r *export.Row) error { return s.seg.enc.Write(r) }
func (s *streamSink) Commit() error             { return s.seg.enc.Flush() }
func (s *streamSink) Flush() error              { return s.seg.enc.Flush() }
func (s *streamSink) Parts() []Part             { return nil }
func (s *streamSink) Close() error              { return s.seg.close() }
func (s *streamSink) Abort()                    { s.seg.enc.Flush(); s.seg.of.Abort() }

// textSink writes one line a row to a terminal or a pipe: ip,port (with
// the status when closed pairs are kept), or the grab line.
type textSink struct {
	w      *bufio.Writer
	status bool
	grab   bool
}

func (t *textSink) Write(r *export.Row) error {
	var err error
	switch {
	case t.grab && (r.Status != export.StatusClosed || r.GrabStatus != ""):
		_, err = t.w.WriteString(GrabLine(r))
	default:
		_, err = t.w.WriteString(PairLine(r, t.status))
	}
	return err
}
func (t *textSink) Commit() error { return t.w.Flush() }
func (t *textSink) Flush() error  { return t.w.Flush() }
func (t *textSink) Parts() []Part { return nil }
func (t *textSink) Close() error  { return t.w.Flush() }
func (t *textSink) Abort()        { t.w.Flush() }

// Output says where rows go.
type Output struct {
	// Path is -o: a file (format from Format or the extension), DIR/ for a
	// partitioned Parquet dataset, "-" or a stream; "" for text lines on
	// Stdout.
	Path   string
	Format export.Format
	// Fields are the columns kept (nil: all). Parts are written with them
	// too, so a resumed run needs ip_u32 and port among them.
	Fields export.Fields
	Stdout io.Writer
	// Commits makes file outputs commit at every checkpoint.
	Commits bool
	// Closed keeps closed pairs; Grab says rows carry grab columns (text
	// lines become grab lines).
	Closed, Grab bool
	// Prior are the parts committed by the runs this one resumes.
	Prior []Part
	// Run names this run's temporary files and parts.
	Run string
}

// Open opens the sink of o, checking its path before anything is sent.
func Open(o Output) (Sink, error) {
	if err := export.CheckLocal(o.Path); err != nil {
		return nil, err
	}
	switch {
	case o.Path == "":
		return &textSink{w: bufio.NewWriterSize(o.Stdout, 64<<10), status: o.Closed, grab: o.Grab}, nil
	case strings.HasSuffix(o.Path, "/"):
		if o.Format != "" && o.Format != export.Parquet {
			return nil, fmt.Errorf("output %s: a directory output is partitioned Parquet", o.Path)
		}
		return newDatasetSink(o.Path, o.Fields, o.Run, o.Commits)
	}
	f := o.Format
	if f == "" {
		var err error
		if f, err = export.FormatFor(o.Path); err != nil {
			return nil, err
		}
	}
	stream, err := export.IsStream(o.Path)
	if err != nil {
		return nil, err
	}
	if stream {
		seg, err := openSegment(o.Path, f, o.Fields, o.Stdout)
		if err != nil {
			return nil, err
		}
		return &streamSink{seg: seg}, nil
	}
	return newFileSink(o.Path, f, o.Fields, o.Run, o.Commits, o.Prior)
}

// CheckWritable checks, before anything is sent, that a file can be
// written at path ("" passes): its directory exists and takes a new file,
// and path is not a directory.
func CheckWritable(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.check")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// runOf is the run id in a part's name, part-RUN-NNNNN.EXT.
func runOf(path string) (string, bool) {
	b := filepath.Base(path)
	if !strings.HasPrefix(b, "part-") {
		return "", false
	}
	run, _, ok := strings.Cut(strings.TrimPrefix(b, "part-"), "-")
	return run, ok
}
