package exposure

import (
	"bytes"
	"slices"
	"testing"

	"github.com/reachscan/reach/export"
)

// laterScan is the demo network a week on: nginx upgraded with a new
// certificate on 443, Redis now asks for a password, PostgreSQL gone,
// Elasticsearch new and open to anyone, telnet new.
func laterScan() []export.Row {
	return []export.Row{
		open("198.19.1.1", 80, "http", "nginx", "1.26.0", ""),
		withTLS(open("198.19.1.1", 443, "http", "nginx", "1.26.0", ""), "9c0b7d2e44aa3f1a"),
		withTLS(open("198.19.1.1", 8443, "http", "nginx", "1.24.0", ""), "3f1a9c0b7d2e44aa"), // unchanged
		open("198.19.1.2", 22, "ssh", "OpenSSH", "9.6p1", "required"),                        // unchanged
		open("198.19.1.3", 6379, "redis", "Redis", "7.0.15", "required"),
		{Addr: ip("198.19.1.4"), Port: 5432, Status: export.StatusClosed}, // closed now: gone
		open("198.19.1.5", 3306, "mysql", "MariaDB", "10.11.6", ""),       // auth unknown now: not a change
		open("198.19.1.6", 9200, "elasticsearch", "Elasticsearch", "8.13.0", "none"),
		open("198.19.1.7", 23, "telnet", "", "", ""),
	}
}

func TestDiff(t *testing.T) {
	changes := Diff(demoScan(), laterScan())
	type row struct {
		kind     Kind
		endpoint string
		sev      Severity
		class    Class
		what     string
	}
	var got []row
	for _, c := range changes {
		got = append(got, row{c.Kind, Endpoint(c.Row()), c.Severity, c.Class, c.What})
	}
	exp := []row{
		{New, "198.19.1.6:9200", Critical, DataService, ""},
		{New, "198.19.1.7:23", High, RemoteAdmin, ""},
		{Changed, "198.19.1.1:80", Info, Web, "version 1.24.0 → 1.26.0"},
		{Changed, "198.19.1.1:443", Info, Web, "version 1.24.0 → 1.26.0; certificate 3f1a9c0b7d2e → 9c0b7d2e44aa"},
		// asking for a password now is an improvement: info
		{Changed, "198.19.1.3:6379", Info, DataService, "authentication none → required"},
		{Gone, "198.19.1.4:5432", Info, DataService, ""},
	}
	if !slices.Equal(got, exp) {
		t.Errorf("Diff:\n got %v\nwant %v", got, exp)
	}
	reasons := map[string]string{
		"198.19.1.6:9200": "Open since the previous scan. Elasticsearch 8.13.0 answers without authentication on 198.19.1.6:9200: anyone who reaches it can read its data.",
		"198.19.1.1:80":   "198.19.1.1:80 changed since the previous scan: version 1.24.0 → 1.26.0. nginx 1.26.0 serves HTTP on 198.19.1.1:80.",
		"198.19.1.4:5432": "198.19.1.4:5432 (postgresql 16.2) no longer answers.",
	}
	for _, c := range changes {
		if want, ok := reasons[Endpoint(c.Row())]; ok && c.Reason != want {
			t.Errorf("%s reason\n got %q\nwant %q", Endpoint(c.Row()), c.Reason, want)
		}
	}
	if c := changes[4]; c.Old.Auth != "none" || c.New.Auth != "required" {
		t.Errorf("changed keeps both rows: old %+v new %+v", c.Old, c.New)
	}
}

func TestDiffFieldChanges(t *testing.T) {
	base := withTLS(open("10.0.0.1", 443, "http", "nginx", "1.22.1", "required"), "aa")
	tests := []struct {
		name string
		new  export.Row
		what string // "" = no change
	}{
		{"identical", base, ""},
		{"service", withTLS(open("10.0.0.1", 443, "tls", "nginx", "1.22.1", "required"), "aa"), "service http → tls"},
		{"product", withTLS(open("10.0.0.1", 443, "http", "Apache httpd", "1.22.1", "required"), "aa"), "product nginx → Apache httpd"},
		{"version", withTLS(open("10.0.0.1", 443, "http", "nginx", "1.24.0", "required"), "aa"), "version 1.22.1 → 1.24.0"},
		{"version lost", withTLS(open("10.0.0.1", 443, "http", "nginx", "", "required"), "aa"), "version 1.22.1 → (none)"},
		{"certificate", withTLS(open("10.0.0.1", 443, "http", "nginx", "1.22.1", "required"), "bb"), "certificate aa → bb"},
		{"TLS dropped", open("10.0.0.1", 443, "http", "nginx", "1.22.1", "required"), "certificate aa → (none)"},
		{"auth", withTLS(open("10.0.0.1", 443, "http", "nginx", "1.22.1", "none"), "aa"), "authentication required → none"},
		{"auth unknown now", withTLS(open("10.0.0.1", 443, "http", "nginx", "1.22.1", ""), "aa"), ""},
		// unknown before, open to anyone now: worth a line
		{"auth none, unknown before", withTLS(open("10.0.0.1", 443, "http", "nginx", "1.22.1", "none"), "aa"), "authentication unknown → none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := base
			if tt.name == "auth none, unknown before" {
				old.Auth = ""
			}
			ch := Diff([]export.Row{old}, []export.Row{tt.new})
			switch {
			case tt.what == "" && len(ch) != 0:
				t.Errorf("want no change, got %+v", ch)
			case tt.what != "" && (len(ch) != 1 || ch[0].Kind != Changed || ch[0].What != tt.what):
				t.Errorf("want changed %q, got %+v", tt.what, ch)
			}
		})
	}
}

func TestDiffEmpty(t *testing.T) {
	if ch := Diff(nil, nil); len(ch) != 0 {
		t.Errorf("Diff(nil, nil) = %v", ch)
	}
	all := Diff(nil, demoScan())
	if len(all) != 7 {
		t.Fatalf("every open port is new: %d changes", len(all))
	}
	for _, c := range all {
		if c.Kind != New {
			t.Errorf("%s: %s", Endpoint(c.Row()), c.Kind)
		}
	}
	gone := Diff(demoScan(), nil)
	if len(gone) != 7 || gone[0].Kind != Gone || gone[0].Severity != Info || Endpoint(gone[0].Row()) != "198.19.1.1:80" {
		t.Errorf("every open port is gone, sorted by address: %+v", gone[0])
	}
}

func TestDiffFailOn(t *testing.T) {
	changes := Diff(demoScan(), laterScan())
	goneOnly := Diff(demoScan(), nil)
	tests := []struct {
		changes []Change
		sev     Severity
		want    bool
	}{
		{changes, Critical, true},
		{changes[1:], Critical, false}, // telnet is high
		{changes[1:], High, true},
		{goneOnly, Low, false},
		{goneOnly, Info, true},
		{nil, Info, false},
	}
	for i, tt := range tests {
		if got := DiffFailOn(tt.changes, tt.sev); got != tt.want {
			t.Errorf("case %d: DiffFailOn(%s) = %v, want %v", i, tt.sev, got, tt.want)
		}
	}
}

func TestChangeRows(t *testing.T) {
	changes := Diff(demoScan(), laterScan())
	rows := ChangeRows(changes)
	if len(rows) != len(changes) {
		t.Fatalf("%d rows for %d changes", len(rows), len(changes))
	}
	for i, r := range rows {
		c := changes[i]
		if r.Finding != string(c.Kind) || r.Severity != c.Severity.String() || r.Class != string(c.Class) || r.Reason != c.Reason {
			t.Errorf("row %d = %+v for %+v", i, r, c)
		}
	}
	if g := rows[5]; g.Finding != "gone" || Endpoint(g) != "198.19.1.4:5432" || g.Product != "PostgreSQL" || g.Status != export.StatusOpen {
		t.Errorf("gone row carries the old row: %+v", g)
	}
	if n := rows[0]; n.Finding != "new" || n.Product != "Elasticsearch" {
		t.Errorf("new row carries the new row: %+v", n)
	}
}

func TestWriteDiffText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDiffText(&b, Diff(demoScan(), laterScan())); err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.golden", b.Bytes())
}

// TestDiffUnknownRows: a row whose grab failed locally, or that a grab
// output holds with no grab status (never tried), says nothing about its
// target: its port is neither gone nor changed.
func TestDiffUnknownRows(t *testing.T) {
	grab := func(r export.Row, status string) export.Row { r.GrabStatus = status; return r }
	redis := grab(open("198.19.1.3", 6379, "redis", "Redis", "7.0.15", "none"), "success")
	redis2 := grab(open("198.19.1.3", 6379, "redis", "Redis", "7.2.4", "none"), "success")
	// from reach grab on a list, a local failure connected to nothing
	noFDs := export.Row{Addr: ip("198.19.1.3"), Port: 6379, GrabStatus: "local-error", GrabError: "socket: too many open files"}
	// from scan --banners: the SYN-ACK is a fact, the grab failed locally
	openNoFDs := grab(export.Row{Addr: ip("198.19.1.3"), Port: 6379, Status: export.StatusOpen}, "local-error")
	untried := export.Row{Addr: ip("198.19.1.3"), Port: 6379}                                // interrupted grab
	untriedOpen := export.Row{Addr: ip("198.19.1.3"), Port: 6379, Status: export.StatusOpen} // scan --banners, grab interrupted
	closed := export.Row{Addr: ip("198.19.1.3"), Port: 6379, Status: export.StatusClosed}
	other := grab(open("198.19.1.9", 22, "ssh", "OpenSSH", "9.6p1", "required"), "success") // makes an output a grab's
	type change struct {
		kind Kind
		what string
	}
	for _, tc := range []struct {
		name     string
		old, new []export.Row
		want     []change
	}{
		{"known version change (control)", []export.Row{redis}, []export.Row{redis2}, []change{{Changed, "version 7.0.15 → 7.2.4"}}},
		{"known gone (control)", []export.Row{redis, other}, []export.Row{closed, other}, []change{{Gone, ""}}},
		{"absent from the new scan is gone (control)", []export.Row{redis, other}, []export.Row{other}, []change{{Gone, ""}}},
		{"local error from a list grab is not gone", []export.Row{redis}, []export.Row{noFDs}, nil},
		{"local error on an open port is not a change", []export.Row{redis}, []export.Row{openNoFDs}, nil},
		{"never tried in a grab output is not gone", []export.Row{redis, other}, []export.Row{untried, other}, nil},
		{"never tried open port in a grab output is not a change", []export.Row{redis, other}, []export.Row{untriedOpen, other}, nil},
		{"old local error: the new service is not a change", []export.Row{openNoFDs}, []export.Row{redis}, nil},
		{"a known row beats an unknown duplicate", []export.Row{redis}, []export.Row{openNoFDs, redis2}, []change{{Changed, "version 7.0.15 → 7.2.4"}}},
		{"local error on a port the old scan lacked is still new", []export.Row{other}, []export.Row{other, openNoFDs}, []change{{New, ""}}},
		{"a scan without grabs: open with no grab status is known", []export.Row{open("198.19.1.3", 6379, "", "", "", "")},
			[]export.Row{{Addr: ip("198.19.1.3"), Port: 6379, Status: export.StatusClosed}}, []change{{Gone, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []change
			for _, c := range Diff(tc.old, tc.new) {
				if Endpoint(c.Row()) != "198.19.1.3:6379" {
					t.Errorf("change on %s: %+v", Endpoint(c.Row()), c)
					continue
				}
				got = append(got, change{c.Kind, c.What})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff: got %v, want %v", got, tc.want)
			}
		})
	}
}
