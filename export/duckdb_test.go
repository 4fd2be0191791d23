package export

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestDuckDBReadsParquet proves the Parquet output with an independent
// reader: DuckDB (npm @duckdb/node-api, which make test installs into
// REACH_DUCKDB_DIR) reads a file and the partitioned dataset with the
// expected types, row count and column statistics — the unsigned columns'
// min/max are the ones arrow/go v17.0.0 got wrong.
func TestDuckDBReadsParquet(t *testing.T) {
	dir := os.Getenv("REACH_DUCKDB_DIR")
	if dir == "" {
		t.Skip("REACH_DUCKDB_DIR unset: make test installs DuckDB's Node.js package there")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	rows := sampleRows(1000)
	out := t.TempDir()
	file := filepath.Join(out, "scan.parquet")
	for _, path := range []string{file, filepath.Join(out, "parts") + "/"} {
		w, err := Create(path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			w.Write(&rows[i])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	script, _ := filepath.Abs("testdata/duckdb_check.mjs")
	for _, glob := range []string{file, filepath.Join(out, "parts", "date=*", "*.parquet")} {
		cmd := exec.Command("node", script, glob)
		cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
		// ESM resolves packages from the script's directory upwards: run a copy
		// placed beside node_modules
		local := filepath.Join(dir, "duckdb_check.mjs")
		b, _ := os.ReadFile(script)
		os.WriteFile(local, b, 0o644)
		cmd.Args[1] = local
		res, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("duckdb: %v\n%s", err, res)
		}
		var got struct {
			Count map[string]any `json:"count"`
			Types []struct {
				Name string `json:"column_name"`
				Type string `json:"column_type"`
			} `json:"types"`
			Stats []struct {
				Col string `json:"col"`
				Min string `json:"smin"`
				Max string `json:"smax"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatalf("%v: %s", err, res)
		}
		if n := got.Count["n"]; n != "1000" && n != float64(1000) {
			t.Fatalf("%s: DuckDB counts %v rows", glob, n)
		}
		want := map[string]string{"ts": "TIMESTAMP WITH TIME ZONE", "ip": "VARCHAR", "ip_u32": "UINTEGER", "port": "USMALLINT", "ttl": "UTINYINT", "mss": "USMALLINT", "asn": "UINTEGER", "banner": "BLOB"}
		for _, c := range got.Types {
			if w, ok := want[c.Name]; ok && w != c.Type {
				t.Errorf("%s: column %s is %s in DuckDB, want %s", glob, c.Name, c.Type, w)
			}
			delete(want, c.Name)
		}
		if len(want) > 0 {
			t.Errorf("%s: columns missing in DuckDB: %v", glob, want)
		}
		wantStats := map[string][2]uint64{"ip_u32": {0xC6130000, 0xC6130000 + 999}, "port": {1, 1000}}
		for _, s := range got.Stats {
			lo, _ := strconv.ParseUint(s.Min, 10, 64)
			hi, _ := strconv.ParseUint(s.Max, 10, 64)
			if w := wantStats[s.Col]; lo != w[0] || hi != w[1] {
				t.Errorf("%s: Parquet statistics of %s are [%s, %s], want %v", glob, s.Col, s.Min, s.Max, w)
			}
		}
		if len(got.Stats) != 2 {
			t.Errorf("%s: statistics %+v", glob, got.Stats)
		}
	}
}
