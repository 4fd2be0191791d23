package export

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleRows(n int) []Row {
	base := time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC)
	rows := make([]Row, n)
	for i := range rows {
		r := Row{
			Time:   base.Add(time.Duration(i) * 1234 * time.Microsecond),
			Addr:   0xC6130000 + uint32(i),
			Port:   uint16(1 + i%65535),
			Status: []Status{StatusOpen, StatusClosed}[i%2],
			TTL:    uint8(64 - i%3),
			Window: uint16(i * 7),
			Probe:  uint8(i % 2),
			Shard:  uint16(i % 3),
		}
		if i%3 != 0 {
			r.MSS = 1460
		}
		if i%4 == 0 {
			r.ASN, r.HasASN = 64496, true
		}
		switch i % 5 {
		case 1:
			r.Service, r.Product, r.Version, r.Banner = "ssh", "OpenSSH", "9.2p1", []byte("SSH-2.0-OpenSSH_9.2p1\r\n")
		case 2:
			r.Banner = []byte{0xff, 0x00, 0xfe, '"', ',', '\n'} // not UTF-8, with CSV specials
			r.Service, r.Owner = "quote\"comma,newline\nservice", "team, \"ops\""
		}
		if i%7 == 3 {
			r.Class, r.Severity = "data", "critical"
			r.Reason, r.Finding = "Redis answers INFO without authentication.", "unexpected"
		}
		if i%6 == 1 {
			r.GrabStatus, r.Auth, r.Details = "success", "none", `{"title":"Lab \"one\""}`
			r.TLS = TLSRow{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", ALPN: "http/1.1",
				Subject: "CN=lab.example", Issuer: "CN=lab.example", SANs: "lab.example,198.19.1.1",
				NotBefore: base.Add(-time.Hour), NotAfter: base.Add(time.Duration(i) * time.Hour),
				SHA256: "ab12", SelfSigned: true, Expired: i%12 == 1, Chain: `[{"subject":"CN=lab.example"}]`}
		} else if i%6 == 2 {
			r.GrabStatus, r.GrabError = "timeout", "read: i/o timeout"
		}
		rows[i] = r
	}
	return rows
}

// TestFormatsHoldTheSameRows writes the same rows in every format (more than
// one record batch) and reads each back to exactly those rows.
func TestFormatsHoldTheSameRows(t *testing.T) {
	rows := sampleRows(batchRows + 123)
	dir := t.TempDir()
	for _, name := range []string{"scan.csv", "scan.jsonl", "scan.parquet", "scan.arrow", "parts/"} {
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			path += "/"
		}
		w, err := Create(path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if err := w.Write(&rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		if tmps, _ := filepath.Glob(path + ".*.tmp"); !strings.HasSuffix(name, "/") && len(tmps) != 1 {
			t.Fatalf("%s: %d temporary files while writing, want 1", name, len(tmps))
		}
		if _, err := os.Stat(path); !strings.HasSuffix(name, "/") && err == nil {
			t.Fatalf("%s: final name exists before Close", name)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if tmps, _ := filepath.Glob(path + "*.tmp"); len(tmps) != 0 {
			t.Fatalf("%s: %v left after Close", name, tmps)
		}
		got, err := ReadFile(strings.TrimSuffix(path, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rows) {
			t.Fatalf("%s: %d rows, want %d", name, len(got), len(rows))
		}
		for i := range rows {
			want := rows[i]
			want.Time = want.Time.Truncate(time.Microsecond)
			g := got[i]
			g.Time = g.Time.UTC()
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("%s row %d:\n got  %+v\n want %+v", name, i, g, want)
			}
		}
	}
	// the partitioned dataset splits at the day boundary
	days, _ := filepath.Glob(filepath.Join(dir, "parts", "date=*", "part-*.parquet"))
	if len(days) != 2 || !strings.Contains(days[0], "date=2026-11-29") || !strings.Contains(days[1], "date=2026-11-30") {
		t.Fatalf("partitions %v", days)
	}
}

func TestFormatOf(t *testing.T) {
	for in, want := range map[string]Format{"a.csv": CSV, "a.jsonl": NDJSON, "a.ndjson": NDJSON, "a.parquet": Parquet, "a.arrow": Arrow, "A.PARQUET": Parquet} {
		if got, err := FormatOf(in); err != nil || got != want {
			t.Errorf("FormatOf(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := FormatOf("a.txt"); err == nil {
		t.Error(".txt accepted")
	}
}

// BenchmarkWrite measures rows written per second to each format: a scan's
// rows (no grab columns) through Write and one Close per 256Ki rows.
func BenchmarkWrite(b *testing.B) {
	rows := sampleRows(1 << 12)
	for i := range rows {
		rows[i].Service, rows[i].Product, rows[i].Version, rows[i].Banner, rows[i].Owner, rows[i].Class, rows[i].Severity = "", "", "", nil, "", "", ""
	}
	for _, f := range []Format{Parquet, Arrow, CSV, NDJSON} {
		b.Run(string(f), func(b *testing.B) {
			dir := b.TempDir()
			b.ReportAllocs()
			var w Writer
			n := 0
			for b.Loop() {
				if w == nil {
					var err error
					if w, err = Create(filepath.Join(dir, "out."+string(f)), f, nil); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Write(&rows[n%len(rows)]); err != nil {
					b.Fatal(err)
				}
				if n++; n%(256<<10) == 0 {
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
					w = nil
				}
			}
			if w != nil {
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
