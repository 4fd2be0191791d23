package export

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestFieldsKeepOnlyTheColumnsNamed writes the same rows with -f in every
// format and checks the columns each file holds: the named ones, in
// schema order, with their values.
func TestFieldsKeepOnlyTheColumnsNamed(t *testing.T) {
	keep, err := ParseFields("status, port,ip,banner")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ip", "port", "status", "banner"}
	rows := sampleRows(10)
	for _, f := range []Format{CSV, NDJSON, Parquet, Arrow} {
		var buf bytes.Buffer
		enc, err := NewEncoder(&buf, f, keep)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if err := enc.Write(&rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		var n int64
		switch f {
		case CSV:
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			got, n = strings.Split(lines[0], ","), int64(len(lines)-1)
			if lines[1] != "198.19.0.0,1,open," {
				t.Errorf("csv: first row %q", lines[1])
			}
		case NDJSON:
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			n = int64(len(lines))
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
				t.Fatal(err)
			}
			for _, c := range want { // banner is set on row 1
				if _, ok := m[c]; ok {
					got = append(got, c)
				}
			}
			if len(m) != len(want) {
				t.Errorf("ndjson: row 1 has keys %v", m)
			}
		case Parquet:
			pf, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range tbl.Schema().Fields() {
				got = append(got, fl.Name)
			}
			n = tbl.NumRows()
		case Arrow:
			r, err := ipc.NewFileReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range r.Schema().Fields() {
				got = append(got, fl.Name)
			}
			rec, err := r.RecordBatch(0)
			if err != nil {
				t.Fatal(err)
			}
			n = rec.NumRows()
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || n != int64(len(rows)) {
			t.Errorf("%s: columns %v and %d rows; want %v and %d", f, got, n, want, len(rows))
		}
	}
	if _, err := ParseFields("ip,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown field: %v", err)
	}
}
