package export

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Format is an output format.
type Format string

// Output formats.
const (
	CSV     Format = "csv"
	NDJSON  Format = "jsonl"
	Parquet Format = "parquet"
	Arrow   Format = "arrow"
)

// FormatOf returns the format named by a file extension (.csv, .jsonl or
// .ndjson, .parquet, .arrow or .feather).
func FormatOf(path string) (Format, error) {
	f, err := formatOf(path)
	if err != nil {
		return "", fmt.Errorf("output %s: unknown extension; use .csv, .jsonl, .parquet or .arrow, or give -O/--output-format", path)
	}
	return f, nil
}

func formatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson", ".json":
		return NDJSON, nil
	case ".parquet":
		return Parquet, nil
	case ".arrow", ".feather", ".ipc":
		return Arrow, nil
	}
	return "", errors.New("unknown extension")
}

// ParseFormat validates an -O/--output-format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case CSV, NDJSON, Parquet, Arrow:
		return f, nil
	case "ndjson", "json":
		return NDJSON, nil
	}
	return "", fmt.Errorf("output format %q: want csv, jsonl, parquet or arrow", s)
}

// Writer writes result rows. Close must be called; a file output appears
// under its final name only when Close succeeds (it is written to a temporary
// name unique to the writer and renamed), so no reader ever sees half a file.
// Abort drops what was written and leaves the final name as it was.
type Writer interface {
	Write(r *Row) error
	Close() error
	Abort()
}

// Encoder writes rows in one format to an io.Writer it does not own: Flush
// hands what is buffered to it (a record batch or row group for the columnar
// formats), Close finishes the format (footer) and flushes. Neither closes
// the io.Writer.
type Encoder interface {
	Write(r *Row) error
	Flush() error
	Close() error
}

// NewEncoder returns an encoder of format f writing the columns keep (nil:
// every column) to w.
func NewEncoder(w io.Writer, f Format, keep Fields) (Encoder, error) {
	switch f {
	case CSV:
		return newCSV(w, keep), nil
	case NDJSON:
		return newNDJSON(w, keep), nil
	case Parquet:
		return newParquet(w, keep)
	case Arrow:
		return newArrowIPC(w, keep)
	}
	return nil, fmt.Errorf("output format %q", f)
}

// Extension is the file name extension of format f, with its dot.
func (f Format) Extension() string {
	if f == NDJSON {
		return ".jsonl"
	}
	return "." + string(f)
}

// Create opens a writer for path in format f ("" = from the extension, or
// NDJSON for a stream). A path ending in "/" is a partitioned Parquet
// dataset: DIR/date=YYYY-MM-DD/part-NNNNN.parquet. A path that is "-" or not
// a regular file (a FIFO, a device, a symlink to one) is a stream, written
// in place (see OpenFile); "-" is stdout.
func Create(path string, f Format, stdout io.Writer) (Writer, error) {
	if err := CheckLocal(path); err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, "/") {
		if f != "" && f != Parquet {
			return nil, fmt.Errorf("output %s: a directory output is partitioned Parquet", path)
		}
		return newPartitioned(path)
	}
	if f == "" {
		var err error
		if f, err = FormatFor(path); err != nil {
			return nil, err
		}
	}
	of, err := OpenFile(path, stdout)
	if err != nil {
		return nil, err
	}
	enc, err := NewEncoder(of, f, nil)
	if err != nil {
		of.Abort()
		return nil, err
	}
	return &fileWriter{f: of, enc: enc}, nil
}

// FormatFor is the format of output path: from the extension, else NDJSON
// for "-" and other streams.
func FormatFor(path string) (Format, error) {
	if f, err := formatOf(path); err == nil {
		return f, nil
	}
	if stream, _ := IsStream(path); stream {
		return NDJSON, nil
	}
	return FormatOf(path)
}

// fileWriter is an encoder on an OutputFile.
type fileWriter struct {
	f   *OutputFile
	enc Encoder
}

func (w *fileWriter) Write(r *Row) error { return w.enc.Write(r) }

func (w *fileWriter) Close() error {
	if err := w.enc.Close(); err != nil {
		w.f.Abort()
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return w.f.Commit()
}

func (w *fileWriter) Abort() { w.f.Abort() }

// csvWriter writes RFC 4180 CSV with a header naming every column; null
// is the empty field, banners are base64.
type csvWriter struct {
	bw   *bufio.Writer
	w    *csv.Writer
	rec  []string
	out  []string // rec, or the columns kept
	keep Fields
}

func newCSV(out io.Writer, keep Fields) *csvWriter {
	bw := bufio.NewWriterSize(out, 256*1024)
	c := &csvWriter{bw: bw, w: csv.NewWriter(bw), rec: make([]string, len(columns)), keep: keep}
	c.w.Write(pick(keep, columns, nil))
	return c
}

func (c *csvWriter) Write(r *Row) error {
	v := c.rec
	v[0] = r.Time.UTC().Format(time.RFC3339Nano)
	v[1] = addrString(r.Addr)
	v[2] = strconv.FormatUint(uint64(r.Addr), 10)
	v[3] = strconv.Itoa(int(r.Port))
	v[4] = r.Status.String()
	v[5] = strconv.Itoa(int(r.TTL))
	v[6] = strconv.Itoa(int(r.Window))
	v[7] = ""
	if r.MSS != 0 {
		v[7] = strconv.Itoa(int(r.MSS))
	}
	v[8] = strconv.Itoa(int(r.Probe))
	v[9] = strconv.Itoa(int(r.Shard))
	v[10] = ""
	if r.HasASN {
		v[10] = strconv.FormatUint(uint64(r.ASN), 10)
	}
	for k, e := range extras {
		x := ""
		switch e.kind {
		case kString:
			x = *e.str(r)
		case kBinary:
			if b := *e.bin(r); b != nil {
				x = base64.StdEncoding.EncodeToString(b)
			}
		case kTime:
			if t := *e.tm(r); !t.IsZero() {
				x = t.UTC().Format(time.RFC3339Nano)
			}
		case kBool:
			if e.valid(r) {
				x = strconv.FormatBool(*e.bl(r))
			}
		}
		v[len(scanColumns)+k] = x
	}
	c.out = pick(c.keep, v, c.out)
	return c.w.Write(c.out)
}

func (c *csvWriter) Flush() error {
	c.w.Flush()
	return errors.Join(c.w.Error(), c.bw.Flush())
}

func (c *csvWriter) Close() error { return c.Flush() }

type ndjsonWriter struct {
	bw   *bufio.Writer
	buf  []byte
	keep Fields
}

func newNDJSON(out io.Writer, keep Fields) *ndjsonWriter {
	return &ndjsonWriter{bw: bufio.NewWriterSize(out, 256*1024), keep: keep}
}

// jsonBanner is how NDJSON holds bytes: a string when UTF-8, else
// {"base64": "..."}.
func jsonBanner(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]string{"base64": base64.StdEncoding.EncodeToString(b)}
}

func (n *ndjsonWriter) Write(r *Row) error {
	buf := append(n.buf[:0], '{')
	key := func(i int) bool {
		if !n.keep.Has(i) {
			return false
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, columns[i]...)
		buf = append(buf, '"', ':')
		return true
	}
	if key(0) {
		buf = append(buf, '"')
		buf = r.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, '"')
	}
	if key(1) {
		buf = append(buf, '"')
		buf = append(buf, addrString(r.Addr)...)
		buf = append(buf, '"')
	}
	if key(2) {
		buf = strconv.AppendUint(buf, uint64(r.Addr), 10)
	}
	if key(3) {
		buf = strconv.AppendUint(buf, uint64(r.Port), 10)
	}
	if key(4) {
		buf = strconv.AppendQuote(buf, r.Status.String())
	}
	if key(5) {
		buf = strconv.AppendUint(buf, uint64(r.TTL), 10)
	}
	if key(6) {
		buf = strconv.AppendUint(buf, uint64(r.Window), 10)
	}
	if r.MSS != 0 && key(7) { // null: the key is left out
		buf = strconv.AppendUint(buf, uint64(r.MSS), 10)
	}
	if key(8) {
		buf = strconv.AppendUint(buf, uint64(r.Probe), 10)
	}
	if key(9) {
		buf = strconv.AppendUint(buf, uint64(r.Shard), 10)
	}
	if r.HasASN && key(10) {
		buf = strconv.AppendUint(buf, uint64(r.ASN), 10)
	}
	for k, e := range extras {
		var v any
		switch e.kind {
		case kString:
			if s := *e.str(r); s != "" {
				v = s
			}
		case kBinary:
			if b := *e.bin(r); b != nil {
				v = jsonBanner(b)
			}
		case kTime:
			if t := *e.tm(r); !t.IsZero() {
				v = t.UTC().Format(time.RFC3339Nano)
			}
		case kBool:
			if e.valid(r) {
				v = *e.bl(r)
			}
		}
		if v == nil || !key(len(scanColumns)+k) {
			continue // null: the key is left out
		}
		x, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf = append(buf, x...)
	}
	buf = append(buf, '}', '\n')
	n.buf = buf
	_, err := n.bw.Write(buf)
	return err
}

func (n *ndjsonWriter) Flush() error { return n.bw.Flush() }

func (n *ndjsonWriter) Close() error { return n.bw.Flush() }

// onlyWriter hides every method of an io.Writer but Write, so that a library
// that closes what it writes to (pqarrow does) cannot close it.
type onlyWriter struct{ io.Writer }

// parquetWriter writes Parquet through pqarrow with zstd; each record batch
// of up to batchRows rows becomes one row group.
type parquetWriter struct {
	fw *pqarrow.FileWriter
	rb *recordBuilder
}

func newParquet(out io.Writer, keep Fields) (*parquetWriter, error) {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithStats(true),
		parquet.WithMaxRowGroupLength(batchRows), parquet.WithCreatedBy("reach"))
	rb := newRecordBuilder(keep)
	fw, err := pqarrow.NewFileWriter(rb.schema, onlyWriter{out}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	return &parquetWriter{fw: fw, rb: rb}, nil
}

func (p *parquetWriter) Write(r *Row) error {
	p.rb.add(r)
	if p.rb.n >= batchRows {
		return p.Flush()
	}
	return nil
}

// Flush writes the rows so far as one row group.
func (p *parquetWriter) Flush() error {
	rec := p.rb.flush()
	if rec == nil {
		return nil
	}
	defer rec.Release()
	return p.fw.Write(rec)
}

func (p *parquetWriter) Close() error {
	defer p.rb.release()
	return errors.Join(p.Flush(), p.fw.Close())
}

// arrowWriter writes an Arrow IPC file.
type arrowWriter struct {
	fw *ipc.FileWriter
	rb *recordBuilder
}

func newArrowIPC(out io.Writer, keep Fields) (*arrowWriter, error) {
	rb := newRecordBuilder(keep)
	fw, err := ipc.NewFileWriter(onlyWriter{out}, ipc.WithSchema(rb.schema))
	if err != nil {
		return nil, fmt.Errorf("arrow writer: %w", err)
	}
	return &arrowWriter{fw: fw, rb: rb}, nil
}

func (a *arrowWriter) Write(r *Row) error {
	a.rb.add(r)
	if a.rb.n >= batchRows {
		return a.Flush()
	}
	return nil
}

// Flush writes the rows so far as one record batch.
func (a *arrowWriter) Flush() error {
	rec := a.rb.flush()
	if rec == nil {
		return nil
	}
	defer rec.Release()
	return a.fw.Write(rec)
}

func (a *arrowWriter) Close() error {
	defer a.rb.release()
	return errors.Join(a.Flush(), a.fw.Close())
}

// partitioned writes DIR/date=YYYY-MM-DD/part-NNNNN.parquet, one part per
// day and per partRows rows.
type partitioned struct {
	dir  string
	day  string
	part int
	rows int
	cur  Writer
}

// partRows is the most rows one part file holds.
const partRows = 4 << 20

func newPartitioned(dir string) (*partitioned, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	p := &partitioned{dir: dir}
	// continue numbering after existing parts, so a resumed scan adds files
	matches, _ := filepath.Glob(filepath.Join(dir, "date=*", "part-*.parquet"))
	for _, m := range matches {
		var n int
		if _, err := fmt.Sscanf(filepath.Base(m), "part-%05d.parquet", &n); err == nil && n >= p.part {
			p.part = n + 1
		}
	}
	return p, nil
}

func (p *partitioned) Write(r *Row) error {
	day := r.Time.UTC().Format("2006-01-02")
	if p.cur == nil || day != p.day || p.rows >= partRows {
		if err := p.closeCur(); err != nil {
			return err
		}
		sub := filepath.Join(p.dir, "date="+day)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("create partition: %w", err)
		}
		w, err := Create(filepath.Join(sub, fmt.Sprintf("part-%05d.parquet", p.part)), Parquet, nil)
		if err != nil {
			return err
		}
		p.cur, p.day, p.rows = w, day, 0
		p.part++
	}
	p.rows++
	return p.cur.Write(r)
}

func (p *partitioned) closeCur() error {
	if p.cur == nil {
		return nil
	}
	err := p.cur.Close()
	p.cur = nil
	return err
}

func (p *partitioned) Close() error { return p.closeCur() }

func (p *partitioned) Abort() {
	if p.cur != nil {
		p.cur.Abort()
		p.cur = nil
	}
}
