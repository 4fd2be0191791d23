package exposure

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/reachscan/reach/export"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// demoScan is a scan of the demo network described in
// testdata/demo-policy.yaml, as the grabbers report it.
func demoScan() []export.Row {
	return []export.Row{
		open("198.19.1.1", 80, "http", "nginx", "1.24.0", ""),
		withTLS(open("198.19.1.1", 443, "http", "nginx", "1.24.0", ""), "3f1a9c0b7d2e44aa"),
		withTLS(open("198.19.1.1", 8443, "http", "nginx", "1.24.0", ""), "3f1a9c0b7d2e44aa"),
		open("198.19.1.2", 22, "ssh", "OpenSSH", "9.6p1", "required"),
		open("198.19.1.3", 6379, "", "", "", ""), // a second probe's reply, before the grab
		open("198.19.1.3", 6379, "redis", "Redis", "7.0.15", "none"),
		open("198.19.1.4", 5432, "postgresql", "PostgreSQL", "16.2", "required"),
		open("198.19.1.5", 3306, "mysql", "MariaDB", "10.11.6", "required"),
		{Addr: ip("198.19.1.6"), Port: 23, Status: export.StatusClosed},
	}
}

func loadDemoPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := LoadPolicy("testdata/demo-policy.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type want struct {
	endpoint string
	kind     Kind
	class    Class
	sev      Severity
	owner    string
	rule     string
}

func checkFindings(t *testing.T, rep Report, exp []want) {
	t.Helper()
	var got []want
	for _, f := range rep.Findings {
		got = append(got, want{Endpoint(f.Row), f.Kind, f.Class, f.Severity, f.Owner, f.Rule})
	}
	if !slices.Equal(got, exp) {
		t.Errorf("findings:\n got %v\nwant %v", got, exp)
	}
}

func TestReviewDemo(t *testing.T) {
	rep := Review(demoScan(), loadDemoPolicy(t))
	checkFindings(t, rep, []want{
		{"198.19.1.3:6379", Unexpected, DataService, Critical, "lab", "198.19.0.0/16"},
		{"198.19.1.5:3306", Unexpected, DataService, Critical, "lab", "198.19.0.0/16"},
		{"198.19.1.4:5432", Ownerless, DataService, Critical, "", "198.19.1.4"},
		{"198.19.1.2:22", Expected, RemoteAdmin, High, "infra", "198.19.1.2"},
		{"198.19.1.1:8443", Unexpected, Web, Medium, "web-team", "198.19.1.1"},
		{"198.19.1.1:80", Expected, Web, Info, "web-team", "198.19.1.1"},
		{"198.19.1.1:443", Expected, Web, Info, "web-team", "198.19.1.1"},
	})
	if rep.Hosts != 5 || rep.ByKind[Unexpected] != 3 || rep.ByKind[Ownerless] != 1 || rep.ByKind[Expected] != 3 {
		t.Errorf("counts: hosts %d kinds %v", rep.Hosts, rep.ByKind)
	}
	if rep.BySeverity[Critical] != 3 || rep.BySeverity[Medium] != 1 || rep.BySeverity[High] != 0 || rep.BySeverity[Info] != 0 {
		t.Errorf("severity counts (findings not expected): %v", rep.BySeverity)
	}
	redis := rep.Findings[0]
	wantReason := "Redis 7.0.15 answers without authentication on 198.19.1.3:6379: anyone who reaches it can read its data. " +
		"Not allowed by the rule for 198.19.0.0/16, which allows 80, 443, 22."
	if redis.Reason != wantReason || !redis.Unauthenticated || redis.Note != "simulated hosts" {
		t.Errorf("redis finding: reason %q unauth %v note %q", redis.Reason, redis.Unauthenticated, redis.Note)
	}
	pg := rep.Findings[2]
	if pg.Reason != "PostgreSQL 16.2 on 198.19.1.4:5432 is reachable; it asks for a password. Allowed by the rule for 198.19.1.4, which names no owner. Nearest owner: lab (the rule for 198.19.0.0/16)." {
		t.Errorf("postgres reason %q", pg.Reason)
	}
	if ssh := rep.Findings[3]; ssh.Reason != "OpenSSH 9.6p1 on 198.19.1.2:22 offers remote administration to anyone who reaches it." {
		t.Errorf("ssh reason %q", ssh.Reason)
	}
}

// TestReviewNDJSON reads the demo scan back through the export reader, as
// the command line does.
func TestReviewNDJSON(t *testing.T) {
	rows, err := export.ReadFile("testdata/demo-scan.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	rep := Review(rows, loadDemoPolicy(t))
	checkFindings(t, rep, []want{
		{"198.19.1.3:6379", Unexpected, DataService, Critical, "lab", "198.19.0.0/16"},
		{"198.19.1.5:3306", Unexpected, DataService, Critical, "lab", "198.19.0.0/16"},
		{"198.19.1.4:5432", Ownerless, DataService, Critical, "", "198.19.1.4"},
		{"198.19.1.2:22", Expected, RemoteAdmin, High, "infra", "198.19.1.2"},
		{"198.19.1.1:8443", Unexpected, Web, Medium, "web-team", "198.19.1.1"},
		{"198.19.1.1:80", Expected, Web, Info, "web-team", "198.19.1.1"},
		{"198.19.1.1:443", Expected, Web, Info, "web-team", "198.19.1.1"},
	})
}

func TestReviewDefaultRule(t *testing.T) {
	rows := []export.Row{
		open("10.0.0.1", 22, "ssh", "OpenSSH", "9.6p1", ""),
		open("10.0.0.1", 80, "http", "nginx", "", ""),
		open("10.0.0.2", 80, "http", "nginx", "", ""),
		open("10.0.0.9", 6379, "redis", "Redis", "7.2.4", "none"),
	}
	tests := []struct {
		name string
		src  string
		exp  []want
	}{
		{"no default: nothing allowed, nobody owns it", "rules:\n  - {match: 10.0.0.2, owner: web, allow: [http]}\n", []want{
			{"10.0.0.9:6379", Unexpected, DataService, Critical, "", "default"},
			{"10.0.0.1:22", Unexpected, RemoteAdmin, High, "", "default"},
			{"10.0.0.1:80", Unexpected, Web, Info, "", "default"},
			{"10.0.0.2:80", Expected, Web, Info, "web", "10.0.0.2"},
		}},
		{"default allows web without an owner", "default: {allow: [80]}\nrules:\n  - {match: 10.0.0.2, owner: web, allow: [http]}\n", []want{
			{"10.0.0.9:6379", Unexpected, DataService, Critical, "", "default"},
			{"10.0.0.1:22", Unexpected, RemoteAdmin, High, "", "default"},
			{"10.0.0.1:80", Ownerless, Web, Info, "", "default"},
			{"10.0.0.2:80", Expected, Web, Info, "web", "10.0.0.2"},
		}},
		{"default with an owner", "default: {owner: secops, allow: [any]}\n", []want{
			{"10.0.0.9:6379", Expected, DataService, Critical, "secops", "default"},
			{"10.0.0.1:22", Expected, RemoteAdmin, High, "secops", "default"},
			{"10.0.0.1:80", Expected, Web, Info, "secops", "default"},
			{"10.0.0.2:80", Expected, Web, Info, "secops", "default"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFindings(t, Review(rows, parse(t, tt.src, nil)), tt.exp)
		})
	}
	// no policy at all behaves as an empty one
	checkFindings(t, Review(rows[:1], nil), []want{{"10.0.0.1:22", Unexpected, RemoteAdmin, High, "", "default"}})
}

func TestFailOn(t *testing.T) {
	demo := Review(demoScan(), loadDemoPolicy(t))
	// only the expected findings: high (ssh) and info (web)
	owned := Review(demoScan()[:4], parse(t, "default: {owner: infra, allow: [any]}\n", nil))
	webOnly := Review(demoScan()[:3], loadDemoPolicy(t)) // 8443 is an unexpected medium
	tests := []struct {
		name string
		rep  Report
		sev  Severity
		want bool
	}{
		{"critical unexpected fails --fail-on critical", demo, Critical, true},
		{"and --fail-on info", demo, Info, true},
		{"expected exposures never fail", owned, Info, false},
		{"medium unexpected fails --fail-on medium", webOnly, Medium, true},
		{"medium unexpected passes --fail-on high", webOnly, High, false},
		{"empty review", Review(nil, nil), Info, false},
	}
	for _, tt := range tests {
		if got := FailOn(tt.rep, tt.sev); got != tt.want {
			t.Errorf("%s: FailOn(%s) = %v, want %v", tt.name, tt.sev, got, tt.want)
		}
	}
}

func TestReportRows(t *testing.T) {
	rep := Review(demoScan(), loadDemoPolicy(t))
	rows := rep.Rows()
	if len(rows) != len(rep.Findings) {
		t.Fatalf("%d rows for %d findings", len(rows), len(rep.Findings))
	}
	r := rows[0]
	if Endpoint(r) != "198.19.1.3:6379" || r.Class != "data-service" || r.Severity != "critical" || r.Owner != "lab" ||
		r.Finding != "unexpected" || r.Reason != rep.Findings[0].Reason || r.Product != "Redis" {
		t.Errorf("row 0 = %+v", r)
	}
	if r := rows[2]; r.Finding != "ownerless" || r.Owner != "" {
		t.Errorf("row 2 = %+v", r)
	}
	// the rows go through the export writers and back
	path := filepath.Join(t.TempDir(), "findings.ndjson")
	w, err := export.Create(path, export.NDJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := export.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) || back[0].Class != "data-service" || back[0].Severity != "critical" || back[0].Owner != "lab" {
		t.Errorf("read back %d rows, first %+v", len(back), back[0])
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, exp) {
		t.Errorf("%s differs (go test -update rewrites it):\n got:\n%s\nwant:\n%s", name, got, exp)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, Review(demoScan(), loadDemoPolicy(t))); err != nil {
		t.Fatal(err)
	}
	golden(t, "review.golden", b.Bytes())

}

// TestTextEscapesServerStrings feeds both text renderers a row whose
// product and version carry terminal controls and checks each reaches the
// output escaped, with no control byte and no extra line.
func TestTextEscapesServerStrings(t *testing.T) {
	tests := []struct {
		name, product, version, want string
	}{
		{"ESC clear screen and newline", "Redis\x1b[2J", "7.0\n15", `Redis\x1b[2J 7.0\n15`},
		{"OSC title ended by BEL", "Redis\x1b]0;pwned\a", "7", `Redis\x1b]0;pwned\a 7`},
		{"raw 8-bit CSI and carriage return", "Redis\x9b2J", "7\r", `Redis\x9b2J 7\r`},
		{"bidi override", "Redis\u202e", "7", `Redis\u202e 7`},
	}
	render := map[string]func(io.Writer, export.Row) error{
		"review": func(w io.Writer, r export.Row) error { return WriteText(w, Review([]export.Row{r}, nil)) },
		"diff":   func(w io.Writer, r export.Row) error { return WriteDiffText(w, Diff(nil, []export.Row{r})) },
	}
	for _, tc := range tests {
		for name, write := range render {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				var plain, hostile bytes.Buffer
				if err := write(&plain, open("10.0.0.1", 6379, "redis", "Redis", "7", "none")); err != nil {
					t.Fatal(err)
				}
				if err := write(&hostile, open("10.0.0.1", 6379, "redis", tc.product, tc.version, "none")); err != nil {
					t.Fatal(err)
				}
				out := hostile.Bytes()
				if i := bytes.IndexFunc(out, func(r rune) bool { return r != '\n' && !strconv.IsPrint(r) }); i >= 0 {
					t.Errorf("unprintable %q at %d reached the output:\n%q", out[i], i, out)
				}
				if got, want := bytes.Count(out, []byte("\n")), bytes.Count(plain.Bytes(), []byte("\n")); got != want {
					t.Errorf("%d lines, want %d as for a plain row:\n%q", got, want, out)
				}
				if !bytes.Contains(out, []byte(tc.want)) {
					t.Errorf("output lacks %q:\n%q", tc.want, out)
				}
			})
		}
	}
}
