package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ReadFile reads every row of a reach output in any format (format from
// the extension; a directory is a partitioned Parquet dataset).
func ReadFile(path string) ([]Row, error) {
	st, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if st.IsDir() {
		parts, _ := filepath.Glob(filepath.Join(path, "date=*", "part-*.parquet"))
		for _, f := range []Format{Parquet, Arrow, CSV, NDJSON} { // the committed parts of an output (NAME.parts/)
			p, _ := filepath.Glob(filepath.Join(path, "part-*"+f.Extension()))
			parts = append(parts, p...)
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("read %s: a directory without a partitioned reach dataset (DIR/date=YYYY-MM-DD/part-NNNNN.parquet) or committed parts (NAME.parts/part-*)", path)
		}
		sort.Strings(parts)
		var out []Row
		for _, p := range parts {
			rows, err := ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
		}
		return out, nil
	}
	f, err := formatOf(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: unknown extension; reach reads .parquet, .arrow, .csv, .jsonl and partitioned dataset directories", path)
	}
	switch f {
	case Parquet:
		return readParquet(path)
	case Arrow:
		return readArrow(path)
	case CSV:
		return readCSV(path)
	default:
		return readNDJSON(path)
	}
}

func readParquet(path string) ([]Row, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	var out []Row
	for rr.Next() {
		if out, err = appendRows(out, rr.RecordBatch()); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if err := rr.Err(); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

func readArrow(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer r.Close()
	var out []Row
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if out, err = appendRows(out, rec); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return out, nil
}

// appendRows converts a record batch of Schema() back into rows.
func appendRows(out []Row, rec arrow.RecordBatch) ([]Row, error) {
	if !rec.Schema().Equal(Schema()) && int(rec.NumCols()) != len(columns) {
		return nil, fmt.Errorf("schema has %d columns, want %d", rec.NumCols(), len(columns))
	}
	c := rec.Columns()
	str := func(col, i int) string {
		a := c[col].(*array.String)
		if a.IsNull(i) {
			return ""
		}
		return a.Value(i)
	}
	for i := range int(rec.NumRows()) {
		r := Row{
			Time:   c[0].(*array.Timestamp).Value(i).ToTime(arrow.Microsecond),
			Addr:   c[2].(*array.Uint32).Value(i),
			Port:   c[3].(*array.Uint16).Value(i),
			TTL:    c[5].(*array.Uint8).Value(i),
			Window: c[6].(*array.Uint16).Value(i),
			Probe:  c[8].(*array.Uint8).Value(i),
			Shard:  c[9].(*array.Uint16).Value(i),
		}
		st, err := ParseStatus(str(4, i))
		if err != nil {
			return nil, err
		}
		r.Status = st
		if m := c[7].(*array.Uint16); !m.IsNull(i) {
			r.MSS = m.Value(i)
		}
		if a := c[10].(*array.Uint32); !a.IsNull(i) {
			r.ASN, r.HasASN = a.Value(i), true
		}
		for k, e := range extras {
			col := c[len(scanColumns)+k]
			if col.IsNull(i) {
				continue
			}
			switch e.kind {
			case kString:
				*e.str(&r) = col.(*array.String).Value(i)
			case kBinary:
				*e.bin(&r) = append([]byte{}, col.(*array.Binary).Value(i)...)
			case kTime:
				*e.tm(&r) = col.(*array.Timestamp).Value(i).ToTime(arrow.Microsecond).UTC()
			case kBool:
				*e.bl(&r) = col.(*array.Boolean).Value(i)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func readCSV(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	cr.FieldsPerRecord = -1 // the header is checked by hand, for a clear error
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("read %s: empty file, not a reach CSV (no header)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(head) != len(columns) {
		return nil, fmt.Errorf("read %s: not a reach CSV: the header has %d columns, want %d (%s, …)", path, len(head), len(columns), strings.Join(columns[:4], ","))
	}
	for i, h := range head {
		if h != columns[i] {
			return nil, fmt.Errorf("read %s: column %d is %q, want %q", path, i+1, h, columns[i])
		}
	}
	cr.FieldsPerRecord = len(columns)
	var out []Row
	for line := 2; ; line++ {
		v, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		r, err := csvRow(v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, r)
	}
}

func csvRow(v []string) (Row, error) {
	var r Row
	var err error
	num := func(s string, bits int) uint64 {
		if err != nil || s == "" {
			return 0
		}
		var n uint64
		n, err = strconv.ParseUint(s, 10, bits)
		return n
	}
	if r.Time, err = time.Parse(time.RFC3339Nano, v[0]); err != nil {
		return r, err
	}
	a, perr := netip.ParseAddr(v[1])
	if perr != nil || !a.Is4() {
		return r, fmt.Errorf("ip %q", v[1])
	}
	r.Addr = uint32(num(v[2], 32))
	r.Port = uint16(num(v[3], 16))
	if r.Status, err = ParseStatus(v[4]); err != nil {
		return r, err
	}
	r.TTL = uint8(num(v[5], 8))
	r.Window = uint16(num(v[6], 16))
	r.MSS = uint16(num(v[7], 16))
	r.Probe = uint8(num(v[8], 8))
	r.Shard = uint16(num(v[9], 16))
	if v[10] != "" {
		r.ASN, r.HasASN = uint32(num(v[10], 32)), true
	}
	for k, e := range extras {
		x := v[len(scanColumns)+k]
		if x == "" {
			continue
		}
		switch e.kind {
		case kString:
			*e.str(&r) = x
		case kBinary:
			if *e.bin(&r), err = base64.StdEncoding.DecodeString(x); err != nil {
				return r, fmt.Errorf("%s: %w", e.name, err)
			}
		case kTime:
			if *e.tm(&r), err = time.Parse(time.RFC3339Nano, x); err != nil {
				return r, fmt.Errorf("%s: %w", e.name, err)
			}
		case kBool:
			if *e.bl(&r), err = strconv.ParseBool(x); err != nil {
				return r, fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return r, err
}

func readNDJSON(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	var out []Row
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		r, err := ndjsonRow(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// jsonRow is the scan part of one NDJSON line as the reader sees it; a key
// left out (null) is a nil pointer.
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

func ndjsonRow(line []byte) (Row, error) {
	var j jsonRow
	if err := json.Unmarshal(line, &j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Row{}, fmt.Errorf("not a reach row: field %s holds a %s that does not fit", te.Field, te.Value)
		}
		return Row{}, fmt.Errorf("not a reach row: %w", err)
	}
	if j.TS == "" || j.IP == "" {
		return Row{}, errors.New("not a reach row: no ts or ip field")
	}
	var x map[string]json.RawMessage
	if err := json.Unmarshal(line, &x); err != nil {
		return Row{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, j.TS)
	if err != nil {
		return Row{}, err
	}
	r := Row{Time: t, Addr: j.IPU32, Port: j.Port, TTL: j.TTL, Window: j.Window, Probe: j.Probe, Shard: j.Shard}
	if r.Status, err = ParseStatus(j.Status); err != nil {
		return Row{}, fmt.Errorf("not a reach row: %w", err)
	}
	if j.MSS != nil {
		r.MSS = *j.MSS
	}
	if j.ASN != nil {
		r.ASN, r.HasASN = *j.ASN, true
	}
	for _, e := range extras {
		raw, ok := x[e.name]
		if !ok || string(raw) == "null" {
			continue
		}
		var err error
		switch e.kind {
		case kString:
			err = json.Unmarshal(raw, e.str(&r))
		case kBinary:
			var v any
			if err = json.Unmarshal(raw, &v); err != nil {
				break
			}
			switch b := v.(type) {
			case string:
				*e.bin(&r) = []byte(b)
			case map[string]any:
				s, _ := b["base64"].(string)
				*e.bin(&r), err = base64.StdEncoding.DecodeString(s)
			default:
				err = fmt.Errorf("want a string or {\"base64\": ...}")
			}
		case kTime:
			var s string
			if err = json.Unmarshal(raw, &s); err == nil {
				*e.tm(&r), err = time.Parse(time.RFC3339Nano, s)
			}
		case kBool:
			err = json.Unmarshal(raw, e.bl(&r))
		}
		if err != nil {
			return Row{}, fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return r, nil
}
