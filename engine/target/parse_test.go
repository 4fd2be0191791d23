package target

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		asn         uint32
		warn        bool
		err         string // substring of the error, "" for success
		ipv6        bool   // the error wraps ErrIPv6 (a list may skip the entry)
	}{
		{in: "198.18.0.7", first: "198.18.0.7", last: "198.18.0.7"},
		{in: "  198.18.0.7  # a comment", first: "198.18.0.7", last: "198.18.0.7"},
		{in: "198.18.0.0/16", first: "198.18.0.0", last: "198.18.255.255"},
		{in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255"},
		{in: "198.18.0.9/32", first: "198.18.0.9", last: "198.18.0.9"},
		{in: "198.18.0.77/24", first: "198.18.0.0", last: "198.18.0.255", warn: true},
		{in: "198.18.0.1-198.18.0.9", first: "198.18.0.1", last: "198.18.0.9"},
		{in: "198.18.0.1 - 198.18.0.9", err: "one target per entry"},
		{in: "198.18.0.5-198.18.0.5", first: "198.18.0.5", last: "198.18.0.5"},
		{in: "AS64496", asn: 64496},
		{in: "as13335", asn: 13335},
		{in: "AS4294967295", asn: 4294967295},
		{in: "AS4294967296", err: "out of range"},
		{in: "ASX", err: "hostnames"},
		{in: "198.18.0.9-198.18.0.1", err: "reversed range"},
		{in: "example.com", err: "hostnames are not resolved"},
		{in: "2001:db8::1", err: "IPv6", ipv6: true},
		{in: "2001:db8::/32", err: "IPv6", ipv6: true},
		{in: "2001:db8::1-2001:db8::9", err: "range start: IPv6", ipv6: true},
		{in: "::ffff:198.18.0.1", err: "IPv4-mapped IPv6 address: write it as 198.18.0.1"},
		{in: "::ffff:198.18.0.0/120", err: "IPv4-mapped IPv6 address: write it as 198.18.0.0"},
		{in: "2001:zz::1", err: "not a valid IPv6 address"},
		{in: "2001:db8::/129", err: "not a valid IPv6 address"},
		{in: "198.18.0.0/33", err: "not an IPv4"},
		{in: "198.18.0.256", err: "not an IPv4"},
		{in: "198.018.0.1", err: "not an IPv4"},
		{in: "198.18.0", err: "not an IPv4"},
		{in: "198.18.0.1,198.18.0.2", err: "one target per entry"},
		{in: "", err: "empty"},
		{in: "# only a comment", err: "empty"},
		{in: "198.18.0.1-", err: "range end"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			e, err := ParseEntry(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseEntry(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				if errors.Is(err, ErrIPv6) != tt.ipv6 {
					t.Fatalf("ParseEntry(%q) error %v: errors.Is(ErrIPv6) = %v, want %v", tt.in, err, !tt.ipv6, tt.ipv6)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntry(%q): %v", tt.in, err)
			}
			if tt.asn != 0 {
				if !e.IsASN || e.ASN != tt.asn {
					t.Fatalf("got %+v, want AS%d", e, tt.asn)
				}
				return
			}
			if got, want := Addr(e.First), netip.MustParseAddr(tt.first); got != want {
				t.Errorf("first = %v, want %v", got, want)
			}
			if got, want := Addr(e.Last), netip.MustParseAddr(tt.last); got != want {
				t.Errorf("last = %v, want %v", got, want)
			}
			if (e.Warning != "") != tt.warn {
				t.Errorf("warning = %q, want warning %v", e.Warning, tt.warn)
			}
		})
	}
}

func TestReadList(t *testing.T) {
	in := "\uFEFF# targets\r\n198.18.0.1\r\n\r\n  198.18.1.0/24 # lab\r\n198.18.2.1-198.18.2.3\n\nAS64496\n198.18.3.3"
	es, err := ReadList("t.txt", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		src  string
		size uint64
	}{{"t.txt:2", 1}, {"t.txt:4", 256}, {"t.txt:5", 3}, {"t.txt:7", 0}, {"t.txt:8", 1}}
	if len(es) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(es), len(want), es)
	}
	for i, w := range want {
		if es[i].Source != w.src || es[i].Size() != w.size {
			t.Errorf("entry %d = %s size %d, want %s size %d", i, es[i].Source, es[i].Size(), w.src, w.size)
		}
	}
}

func TestReadListErrorsNameLine(t *testing.T) {
	in := "198.18.0.1\nscanme.example\n198.18.0.0/16\n2001:db8::1\r\n"
	es, err := ReadList("hosts.txt", strings.NewReader(in))
	if err == nil || es != nil {
		t.Fatalf("got %v, %v; want an error and no entries", es, err)
	}
	for _, want := range []string{"hosts.txt:2:", "hostnames", "hosts.txt:4:", "IPv6"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var many strings.Builder
	for range 25 {
		many.WriteString("bad\n")
	}
	_, err = ReadList("m", strings.NewReader(many.String()))
	if err == nil || !strings.Contains(err.Error(), "m:10:") || strings.Contains(err.Error(), "m:11:") || !strings.Contains(err.Error(), "15 more bad lines") {
		t.Errorf("error for 25 bad lines = %v", err)
	}
}

// TestReadFilterListSkipsIPv6: an allow or block list skips well-formed IPv6
// entries, counting them and naming the first, and keeps every IPv4 entry;
// a malformed or IPv4-mapped line still fails the list, and a targets list
// (ReadList) still refuses IPv6.
func TestReadFilterListSkipsIPv6(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		entries []string // sources of the entries kept
		skipped Skipped
		err     string // substring of ReadFilterList's error, "" for none
	}{
		{name: "none", in: "198.18.0.1\n198.18.1.0/24\n",
			entries: []string{"b.txt:1", "b.txt:2"}},
		{name: "mixed", in: "# v4 and v6\n198.18.0.1\n2001:db8::/32\r\n198.18.1.0/24\n::1\n2001:db8::1-2001:db8::9\n",
			entries: []string{"b.txt:2", "b.txt:4"}, skipped: Skipped{Count: 3, First: "b.txt:3", Text: "2001:db8::/32"}},
		{name: "only IPv6", in: "fe80::1 # link local\n",
			skipped: Skipped{Count: 1, First: "b.txt:1", Text: "fe80::1"}},
		{name: "malformed IPv6", in: "2001:db8::1\n2001:zz::1\n", err: `b.txt:2: "2001:zz::1": not a valid IPv6 address`},
		{name: "IPv4-mapped", in: "::ffff:198.18.0.1\n", err: `b.txt:1: "::ffff:198.18.0.1": IPv4-mapped IPv6 address: write it as 198.18.0.1`},
		{name: "hostname", in: "2001:db8::1\nscanme.example\n", err: `b.txt:2: "scanme.example": not an IPv4 address: hostnames`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, sk, err := ReadFilterList("b.txt", strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || es != nil {
					t.Fatalf("got %v, %v; want no entries and an error containing %q", es, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Source)
			}
			if strings.Join(got, " ") != strings.Join(tt.entries, " ") {
				t.Errorf("entries from %v, want %v", got, tt.entries)
			}
			if sk != tt.skipped {
				t.Errorf("skipped = %+v, want %+v", sk, tt.skipped)
			}
			if tt.skipped.Count > 0 {
				if _, err := ReadList("b.txt", strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.skipped.First+": ") || !errors.Is(err, ErrIPv6) {
					t.Errorf("ReadList error = %v, want the IPv6 refusal at %s", err, tt.skipped.First)
				}
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	es, err := ParseArgs([]string{"198.18.0.1,198.18.0.2", "198.18.1.0/24"})
	if err != nil || len(es) != 3 || es[2].Source != "argument 2" {
		t.Fatalf("got %+v, %v", es, err)
	}
	if _, err := ParseArgs([]string{"198.18.0.1", "nope"}); err == nil || !strings.Contains(err.Error(), "argument 2") {
		t.Fatalf("error = %v, want one naming argument 2", err)
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in   string
		want string // FormatPorts of the result
		n    int
		err  string
	}{
		{in: "80", want: "80", n: 1},
		{in: "22,80,443,8000-8100", want: "22,80,443,8000-8100", n: 104},
		{in: "443, 80,80, 22", want: "22,80,443", n: 3},
		{in: "1-65535", want: "1-65535", n: 65535},
		{in: "10-20,15-25", want: "10-25", n: 16},
		{in: "", err: "empty port list"},
		{in: "0", err: "out of range"},
		{in: "65536", err: "out of range"},
		{in: "100-90", err: "reversed"},
		{in: "80,", err: "empty item"},
		{in: "http", err: "not a port"},
		{in: "-5", err: "missing port"},
		{in: "1-2-3", err: "not a port"},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePorts(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePorts(%q): %v", tt.in, err)
			continue
		}
		if FormatPorts(got) != tt.want || len(got) != tt.n {
			t.Errorf("ParsePorts(%q) = %s (%d), want %s (%d)", tt.in, FormatPorts(got), len(got), tt.want, tt.n)
		}
	}
}

// FuzzParseEntry checks ParseEntry against net/netip: an accepted address or
// CIDR must be exactly what netip parses, and an AS entry must round-trip.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"198.18.0.7",              // bare address
		"198.18.0.0/15",           // CIDR
		"198.18.0.77/24",          // host bits set: masked with a warning
		"198.18.0.1-198.18.0.200", // range
		"198.18.0.9-198.18.0.1",   // reversed range
		"AS64496",                 // AS number
		"AS99999999999",           // AS number overflow
		"2001:db8::/32",           // IPv6
		"example.com",             // hostname
		"01.2.3.4",                // leading zero (octal ambiguity)
		"1.2.3.4 # comment",       // trailing comment
		"1.2.3.4/-1",              // negative prefix length
		"",                        // empty
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			return
		}
		if e.IsASN {
			if v, err := strconv.ParseUint(e.Text[2:], 10, 32); err != nil || uint32(v) != e.ASN || !strings.EqualFold(e.Text[:2], "AS") {
				t.Fatalf("%q parsed as AS%d", s, e.ASN)
			}
			return
		}
		if e.First > e.Last {
			t.Fatalf("%q: first %v > last %v", s, Addr(e.First), Addr(e.Last))
		}
		switch {
		case strings.Contains(e.Text, "/"):
			p, err := netip.ParsePrefix(e.Text)
			if err != nil || !p.Addr().Is4() {
				t.Fatalf("%q accepted but netip says %v", s, err)
			}
			p = p.Masked()
			if Addr(e.First) != p.Addr() || e.Size() != uint64(1)<<(32-p.Bits()) {
				t.Fatalf("%q: range %v-%v disagrees with %v", s, Addr(e.First), Addr(e.Last), p)
			}
		case strings.Contains(e.Text, "-"):
			a, b, _ := strings.Cut(e.Text, "-")
			if Addr(e.First) != netip.MustParseAddr(strings.TrimSpace(a)) || Addr(e.Last) != netip.MustParseAddr(strings.TrimSpace(b)) {
				t.Fatalf("%q: range %v-%v", s, Addr(e.First), Addr(e.Last))
			}
		default:
			a, err := netip.ParseAddr(e.Text)
			if err != nil || !a.Is4() || Addr(e.First) != a || e.First != e.Last {
				t.Fatalf("%q accepted as %v-%v but netip says %v, %v", s, Addr(e.First), Addr(e.Last), a, err)
			}
		}
	})
}

// FuzzParsePorts checks that an accepted list is sorted, distinct, within
// 1-65535, and survives FormatPorts → ParsePorts unchanged.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{
		"80",                   // single port
		"22,80,443,8000-8100",  // mixed list
		"1-65535",              // every port
		"0",                    // port 0
		"100-90",               // reversed range
		"80,,443",              // empty item
		" 22 , 23 ",            // spaces
		"99999999999999999999", // overflow
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParsePorts(s)
		if err != nil {
			return
		}
		if len(ports) == 0 {
			t.Fatalf("%q: accepted with no ports", s)
		}
		for i, p := range ports {
			if p == 0 || i > 0 && ports[i-1] >= p {
				t.Fatalf("%q: ports not sorted, distinct and non-zero: %v", s, ports)
			}
		}
		again, err := ParsePorts(FormatPorts(ports))
		if err != nil || len(again) != len(ports) {
			t.Fatalf("%q: round trip through %q failed: %v", s, FormatPorts(ports), err)
		}
		for i := range again {
			if again[i] != ports[i] {
				t.Fatalf("%q: round trip changed the list", s)
			}
		}
	})
}
