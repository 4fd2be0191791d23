package export

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
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
// under its final name only when Close succeeds (it is written to NAME.tmp
// and renamed), so no reader ever sees half a file.
type Writer interface {
	Write(r *Row) error
	Close() error
}

// Create opens a writer for path in format f ("" = from the extension).
// A path ending in "/" is a partitioned Parquet dataset:
// DIR/date=YYYY-MM-DD/part-NNNNN.parquet.
func Create(path string, f Format) (Writer, error) {
	if strings.HasSuffix(path, "/") {
		if f != "" && f != Parquet {
			return nil, fmt.Errorf("output %s: a directory output is partitioned Parquet", path)
		}
		return newPartitioned(path)
	}
	if f == "" {
		var err error
		if f, err = FormatOf(path); err != nil {
			return nil, err
		}
	}
	tf, err := newTempFile(path)
	if err != nil {
		return nil, err
	}
	var w Writer
	switch f {
	case CSV:
		w, err = newCSV(tf), nil
	case NDJSON:
		w, err = newNDJSON(tf), nil
	case Parquet:
		w, err = newParquet(tf)
	case Arrow:
		w, err = newArrowIPC(tf)
	default:
		err = fmt.Errorf("output format %q", f)
	}
	if err != nil {
		tf.abort()
		return nil, err
	}
	return w, nil
}

// tempFile is NAME.tmp, renamed to NAME on commit.
type tempFile struct {
	*os.File
	final string
}

func newTempFile(path string) (*tempFile, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &tempFile{File: f, final: path}, nil
}

func (t *tempFile) commit() error {
	if err := t.Sync(); err != nil {
		t.abort()
		return fmt.Errorf("sync %s: %w", t.Name(), err)
	}
	if err := t.File.Close(); err != nil {
		os.Remove(t.Name())
		return fmt.Errorf("close %s: %w", t.Name(), err)
	}
	if err := os.Rename(t.Name(), t.final); err != nil {
		return fmt.Errorf("rename %s: %w", t.Name(), err)
	}
	return nil
}

func (t *tempFile) abort() {
	t.File.Close()
	os.Remove(t.Name())
}

// csvWriter writes RFC 4180 CSV with a header naming every column; null
// is the empty field, banners are base64.
type csvWriter struct {
	tf  *tempFile
	bw  *bufio.Writer
	w   *csv.Writer
	rec []string
}

func newCSV(tf *tempFile) *csvWriter {
	bw := bufio.NewWriterSize(tf, 256*1024)
	c := &csvWriter{tf: tf, bw: bw, w: csv.NewWriter(bw), rec: make([]string, len(columns))}
	c.w.Write(columns)
	return c
}

func (c *csvWriter) Write(r *Row) error {
	v := c.rec
	v[0] = r.Time.UTC().Format(time.RFC3339Nano)
	v[1] = addrString(r.Addr)
	v[2] = strconv.FormatUint(uint64(r.Addr), 10)
	v[3] = strconv.Itoa(int(r.Port))
	v[4] = r.Status
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
	return c.w.Write(v)
}

func (c *csvWriter) Close() error {
	c.w.Flush()
	if err := errors.Join(c.w.Error(), c.bw.Flush()); err != nil {
		c.tf.abort()
		return fmt.Errorf("write %s: %w", c.tf.final, err)
	}
	return c.tf.commit()
}

// jsonRow is the scan part of one NDJSON line; pointers are null when
// absent. The extras follow it in schema order.
type jsonRow struct {
	TS     string  `json:"ts"`
	IP     string  `json:"ip"`
	IPU32  uint32  `json:"ip_u32"`
	Port   uint16  `json:"port"`
	Status string  `json:"status"`
	TTL    uint8   `json:"ttl"`
	Window uint16  `json:"window"`
	MSS    *uint16 `json:"mss"`
	Probe  uint8   `json:"probe"`
	Shard  uint16  `json:"shard"`
	ASN    *uint32 `json:"asn"`
}

type ndjsonWriter struct {
	tf  *tempFile
	bw  *bufio.Writer
	buf []byte
}

func newNDJSON(tf *tempFile) *ndjsonWriter {
	bw := bufio.NewWriterSize(tf, 256*1024)
	return &ndjsonWriter{tf: tf, bw: bw}
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
	j := jsonRow{TS: r.Time.UTC().Format(time.RFC3339Nano), IP: addrString(r.Addr), IPU32: r.Addr, Port: r.Port, Status: r.Status,
		TTL: r.TTL, Window: r.Window, Probe: r.Probe, Shard: r.Shard}
	if r.MSS != 0 {
		m := r.MSS
		j.MSS = &m
	}
	if r.HasASN {
		a := r.ASN
		j.ASN = &a
	}
	b, err := json.Marshal(&j)
	if err != nil {
		return err
	}
	buf := append(n.buf[:0], b[:len(b)-1]...) // without its closing brace
	for _, e := range extras {
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
		buf = append(buf, ',', '"')
		buf = append(buf, e.name...)
		buf = append(buf, '"', ':')
		if v == nil {
			buf = append(buf, "null"...)
			continue
		}
		x, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf = append(buf, x...)
	}
	buf = append(buf, '}', '\n')
	n.buf = buf
	_, err = n.bw.Write(buf)
	return err
}

func (n *ndjsonWriter) Close() error {
	if err := n.bw.Flush(); err != nil {
		n.tf.abort()
		return fmt.Errorf("write %s: %w", n.tf.final, err)
	}
	return n.tf.commit()
}

// parquetWriter writes Parquet through pqarrow with zstd; each record batch
// of up to batchRows rows becomes one row group.
type parquetWriter struct {
	tf *tempFile
	fw *pqarrow.FileWriter
	rb *recordBuilder
}

func newParquet(tf *tempFile) (*parquetWriter, error) {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithStats(true),
		parquet.WithMaxRowGroupLength(batchRows), parquet.WithCreatedBy("reach"))
	fw, err := pqarrow.NewFileWriter(Schema(), tf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	return &parquetWriter{tf: tf, fw: fw, rb: newRecordBuilder()}, nil
}

func (p *parquetWriter) Write(r *Row) error {
	p.rb.add(r)
	if p.rb.n >= batchRows {
		return p.flush()
	}
	return nil
}

func (p *parquetWriter) flush() error {
	rec := p.rb.flush()
	if rec == nil {
		return nil
	}
	defer rec.Release()
	if err := p.fw.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", p.tf.final, err)
	}
	return nil
}

func (p *parquetWriter) Close() error {
	defer p.rb.release()
	err := p.flush()
	if cerr := p.fw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close parquet %s: %w", p.tf.final, cerr)
	}
	if err != nil {
		p.tf.abort()
		return err
	}
	// pqarrow's Close closed the file too: only the rename is left
	return commitClosed(p.tf)
}

// commitClosed renames a temp file that its writer has already closed.
func commitClosed(t *tempFile) error {
	if err := os.Rename(t.Name(), t.final); err != nil {
		return fmt.Errorf("rename %s: %w", t.Name(), err)
	}
	return nil
}

// arrowWriter writes an Arrow IPC file.
type arrowWriter struct {
	tf *tempFile
	fw *ipc.FileWriter
	rb *recordBuilder
}

func newArrowIPC(tf *tempFile) (*arrowWriter, error) {
	fw, err := ipc.NewFileWriter(tf, ipc.WithSchema(Schema()))
	if err != nil {
		return nil, fmt.Errorf("arrow writer: %w", err)
	}
	return &arrowWriter{tf: tf, fw: fw, rb: newRecordBuilder()}, nil
}

func (a *arrowWriter) Write(r *Row) error {
	a.rb.add(r)
	if a.rb.n >= batchRows {
		return a.flush()
	}
	return nil
}

func (a *arrowWriter) flush() error {
	rec := a.rb.flush()
	if rec == nil {
		return nil
	}
	defer rec.Release()
	return a.fw.Write(rec)
}

func (a *arrowWriter) Close() error {
	defer a.rb.release()
	err := errors.Join(a.flush(), a.fw.Close())
	if err != nil {
		a.tf.abort()
		return fmt.Errorf("write %s: %w", a.tf.final, err)
	}
	return a.tf.commit()
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
		w, err := Create(filepath.Join(sub, fmt.Sprintf("part-%05d.parquet", p.part)), Parquet)
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
