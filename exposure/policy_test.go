package exposure

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/reachscan/reach/engine/target/asn"
	"github.com/reachscan/reach/export"
)

func openASN(t testing.TB) *asn.DB {
	t.Helper()
	db, err := asn.Open("testdata/pfx2as.txt")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func parse(t *testing.T, src string, res ASNResolver) *Policy {
	t.Helper()
	p, err := ParsePolicy("policy.yaml", []byte(src), res)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExamplePolicy matches addresses against testdata/policy.yaml, whose AS
// entry resolves through testdata/pfx2as.txt (CAIDA pfx2as: AS64496
// originates 198.51.100.0/24, 203.0.113.0/25 and, with AS64497,
// 198.19.3.0/24).
func TestExamplePolicy(t *testing.T) {
	p, err := LoadPolicy("testdata/policy.yaml", openASN(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Default.Owner != "secops" || p.Default.Allow.String() != "nothing" {
		t.Errorf("default = %+v", p.Default)
	}
	tests := []struct {
		addr, match, owner, allow string
		line                      int
	}{
		{"198.19.1.10", "198.19.1.10", "infra", "22, ssh", 14}, // address beats its /24
		{"198.19.1.11", "198.19.1.0/24", "web-team", "80, 443, http, https", 9},
		{"198.19.1.0", "198.19.1.0/24", "web-team", "80, 443, http, https", 9},
		{"198.19.1.255", "198.19.1.0/24", "web-team", "80, 443, http, https", 9},
		{"198.19.1.21", "198.19.1.20, 198.19.1.21", "dba", "5432", 19}, // a list of addresses
		{"198.19.1.22", "198.19.1.0/24", "web-team", "80, 443, http, https", 9},
		{"198.19.2.5", "198.19.2.0/24", "", "8000-8099", 24},
		{"198.51.100.7", "AS64496", "partner-noc", "any", 28},
		{"203.0.113.127", "AS64496", "partner-noc", "any", 28},
		{"203.0.113.128", "default", "secops", "nothing", 0}, // outside AS64496's /25
		{"198.19.3.1", "AS64496", "partner-noc", "any", 28},  // multi-origin prefix
		{"10.0.0.1", "default", "secops", "nothing", 0},
	}
	for _, tt := range tests {
		r := p.RuleFor(ip(tt.addr))
		if r.Match != tt.match || r.Owner != tt.owner || r.Allow.String() != tt.allow || r.Line != tt.line {
			t.Errorf("RuleFor(%s) = %q owner %q allow %q line %d; want %q owner %q allow %q line %d",
				tt.addr, r.Match, r.Owner, r.Allow, r.Line, tt.match, tt.owner, tt.allow, tt.line)
		}
	}
	as := p.RuleFor(ip("198.51.100.1"))
	if got := fmt.Sprint(as.Prefixes); got != "[198.19.3.0/24 198.51.100.0/24 203.0.113.0/25]" {
		t.Errorf("AS64496 prefixes = %s", got)
	}
}

func TestMostSpecificWins(t *testing.T) {
	p := parse(t, `
rules:
  - {match: 10.0.0.0/8, owner: a}
  - {match: 10.1.2.3, owner: d}
  - {match: 10.1.0.0/16, owner: b}
  - {match: 10.1.2.0/24, owner: c}
  - {match: 0.0.0.0/0, owner: everyone}
`, nil)
	for addr, owner := range map[string]string{
		"10.9.9.9": "a", "10.1.9.9": "b", "10.1.2.9": "c", "10.1.2.3": "d", "10.1.2.4": "c", "11.0.0.0": "everyone",
	} {
		if got := p.RuleFor(ip(addr)).Owner; got != owner {
			t.Errorf("RuleFor(%s).Owner = %q, want %q", addr, got, owner)
		}
	}
}

// TestASTies: pfx2as.txt has 198.19.1.0/24 from AS64497 and 198.19.3.0/24
// from both AS64496 and AS64497.
func TestASTies(t *testing.T) {
	db := openASN(t)
	tests := []struct {
		name, src, addr, owner string
	}{
		{"CIDR beats an AS prefix of the same length, AS first",
			"rules:\n  - {match: AS64497, owner: as}\n  - {match: 198.19.1.0/24, owner: cidr}\n", "198.19.1.5", "cidr"},
		{"CIDR beats an AS prefix of the same length, CIDR first",
			"rules:\n  - {match: 198.19.1.0/24, owner: cidr}\n  - {match: AS64497, owner: as}\n", "198.19.1.5", "cidr"},
		{"a longer AS prefix beats a shorter CIDR",
			"rules:\n  - {match: 198.19.0.0/16, owner: cidr}\n  - {match: AS64497, owner: as}\n", "198.19.1.5", "as"},
		{"between two AS prefixes the earlier rule wins",
			"rules:\n  - {match: AS64496, owner: first}\n  - {match: AS64497, owner: second}\n", "198.19.3.9", "first"},
		{"between two AS prefixes the earlier rule wins, swapped",
			"rules:\n  - {match: AS64497, owner: first}\n  - {match: AS64496, owner: second}\n", "198.19.3.9", "first"},
		{"AS written in lower case",
			"rules:\n  - {match: as64497, owner: as}\n", "198.19.1.200", "as"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parse(t, tt.src, db)
			if got := p.RuleFor(ip(tt.addr)).Owner; got != tt.owner {
				t.Errorf("RuleFor(%s).Owner = %q, want %q", tt.addr, got, tt.owner)
			}
		})
	}
}

func TestAllow(t *testing.T) {
	p := parse(t, "default:\n  allow: [443, 8000-8099, SSH, https, ssh]\n", nil)
	a := p.Default.Allow
	if got := a.String(); got != "443, 8000-8099, ssh, https" {
		t.Errorf("Allow = %q", got)
	}
	tests := []struct {
		row  export.Row
		want bool
	}{
		{open("10.0.0.1", 443, "", "", "", ""), true},
		{open("10.0.0.1", 8000, "", "", "", ""), true},
		{open("10.0.0.1", 8099, "", "", "", ""), true},
		{open("10.0.0.1", 8100, "", "", "", ""), false},
		{open("10.0.0.1", 2222, "ssh", "", "", ""), true},
		{open("10.0.0.1", 22, "", "", "", ""), false}, // a service name needs the service identified
		{withTLS(open("10.0.0.1", 9443, "http", "", "", ""), "ab"), true},
		{open("10.0.0.1", 9443, "tls", "", "", ""), true},
		{open("10.0.0.1", 9443, "http", "", "", ""), false}, // https needs TLS
	}
	for _, tt := range tests {
		if got := a.Allows(tt.row); got != tt.want {
			t.Errorf("Allows(port %d service %q tls %q) = %v, want %v", tt.row.Port, tt.row.Service, tt.row.TLS.SHA256, got, tt.want)
		}
	}
	any := parse(t, "default:\n  allow: any\n", nil).Default.Allow
	if !any.Allows(open("10.0.0.1", 1, "", "", "", "")) || any.String() != "any" {
		t.Errorf("any = %+v", any)
	}
	var nilPolicy *Policy
	if r := nilPolicy.RuleFor(1); r.Match != "default" || r.Allow.Allows(open("10.0.0.1", 80, "http", "", "", "")) {
		t.Errorf("nil policy rule = %+v", r)
	}
}

// TestMalformedPolicy is a golden table of errors; each names the line and
// column of the offending token.
func TestMalformedPolicy(t *testing.T) {
	db := openASN(t)
	tests := []struct{ src, err string }{
		{"rules:\n  - match: 198.19.1.0/33\n", `policy.yaml:2:12: "198.19.1.0/33": not a CIDR`},
		{"rules:\n  - match: 198.19.1.7/24\n", `policy.yaml:2:12: "198.19.1.7/24" has host bits set; the network is 198.19.1.0/24`},
		{"rules:\n  - match: 2001:db8::/32\n", `policy.yaml:2:12: "2001:db8::/32": not an IPv4 CIDR`},
		{"rules:\n  - match: example.com\n", `policy.yaml:2:12: "example.com": want a CIDR, an address or an AS number`},
		{"rules:\n  - match: [10.0.0.1, 10.0.0.300]\n", `policy.yaml:2:23: "10.0.0.300": want a CIDR, an address or an AS number`},
		{"rules:\n  - owner: x\n    allow: [80]\n", `policy.yaml:2:5: rule has no match: want a CIDR, an address or an AS number`},
		{"rules:\n  - match:\n    owner: x\n", `policy.yaml:2:5: rule has no match: want a CIDR, an address or an AS number`},
		{"rules:\n  - match: {a: 1}\n", `policy.yaml:2:13: match: want a CIDR, an address or an AS number`},
		{"rules:\n  - match: 10.0.0.0/8\n    ownr: x\n", `policy.yaml:3:5: unknown field "ownr"`},
		{"default:\n  match: 10.0.0.1\n", `policy.yaml:2:3: unknown field "match"`},
		{"rulez: []\n", `policy.yaml:1:1: unknown field "rulez"`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [80, 70000]\n", `policy.yaml:3:17: port "70000": want 1-65535`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [0]\n", `policy.yaml:3:13: port "0": want 1-65535`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [90-80]\n", `policy.yaml:3:13: port range "90-80" is reversed`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [ssh2]\n", `policy.yaml:3:13: allow: unknown service "ssh2"; want a port, a port range, "any" or one of ` + strings.Join(KnownServices(), ", ")},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [[80]]\n", `policy.yaml:3:13: allow: want a port, a port range, a service name or "any"`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: {80: x}\n", `policy.yaml:3:13: allow: want a port, a port range, a service name or "any"`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow: [80, , 443]\n", `policy.yaml:3:17: unexpected scalar value type`},
		{"rules:\n  - match: 10.0.0.0/8\n    allow:\n      - 80\n      -\n", `policy.yaml:5:7: allow: want a port, a port range, a service name or "any"`},
		{"rules:\n-\n", `policy.yaml:2:1: rules: want a mapping with match, owner, allow and note`},
		{"rules:\n  - match: 10.0.0.0/8\n    owner: [a]\n", `policy.yaml:3:12: owner: want text`},
		{"rules:\n  - match: 10.0.0.0/8\n  - match: 10.0.0.0/8\n", `policy.yaml:3:12: 10.0.0.0/8 is already matched by the rule at line 2`},
		{"rules:\n  - match: [10.0.0.1, 10.0.0.1/32]\n", `policy.yaml:2:23: 10.0.0.1/32 is listed twice in this rule`},
		{"rules:\n  - match: 10.0.0.0/8\n   owner: x\n", `policy.yaml:3:4: value is not allowed in this context`},
		{"rules: [\n", `policy.yaml:1:8: sequence end token ']' not found`},
		{"- a\n", `policy.yaml:1:1: sequence was used where mapping is expected`},
		{"rules: 5\n", `policy.yaml:1:8: rules: want a list`},
		{"rules:\n  - 5\n", `policy.yaml:2:5: rules: want a mapping with match, owner, allow and note`},
		{"rules:\n  - match: AS64496x\n", `policy.yaml:2:12: "AS64496x": want an AS number like AS64496`},
		{"rules:\n  - match: AS64511\n", `policy.yaml:2:12: AS64511 not found in ASN dataset testdata/pfx2as.txt (caida-pfx2as)`},
		{"rules:\n  - match: 10.0.0.0/8\n  - match: [AS64496, AS64512]\n", `policy.yaml:3:22: AS64512 not found in ASN dataset testdata/pfx2as.txt (caida-pfx2as)`},
	}
	for _, tt := range tests {
		_, err := ParsePolicy("policy.yaml", []byte(tt.src), db)
		if err == nil || err.Error() != tt.err {
			t.Errorf("ParsePolicy(%q)\n got %v\nwant %s", tt.src, err, tt.err)
		}
		var pe *PolicyError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("ParsePolicy(%q) error %T is not a *PolicyError", tt.src, err)
		}
	}
	_, err := ParsePolicy("policy.yaml", []byte("rules:\n  - match: 10.0.0.0/8\n  - match: AS64496\n"), nil)
	if err == nil || err.Error() != "policy.yaml:3:12: AS64496: AS entries need an ASN dataset (reach review --asn-db FILE)" {
		t.Errorf("AS without a dataset: %v", err)
	}
}

func TestEmptyPolicy(t *testing.T) {
	for _, src := range []string{"", "# nothing declared\n", "rules: []\n"} {
		p := parse(t, src, nil)
		if len(p.Rules) != 0 || p.RuleFor(ip("10.0.0.1")).Match != "default" || p.Default.Allow.String() != "nothing" {
			t.Errorf("%q: %+v", src, p)
		}
	}
}

// FuzzParsePolicy checks that the parser either names a line and column or
// returns a policy whose rules all cover valid, masked IPv4 prefixes that
// RuleFor finds.
func FuzzParsePolicy(f *testing.F) {
	example, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	demo, err := os.ReadFile("testdata/demo-policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)                                                           // every feature: default, CIDR, address, list, range, AS
	f.Add(demo)                                                              // nested /16 and /32 rules
	f.Add([]byte(""))                                                        // empty policy
	f.Add([]byte("rules:\n  - {match: 10.0.0.0/8, allow: [80]}\n"))          // flow mapping
	f.Add([]byte("rules:\n  - match: 10.0.0.7/8\n"))                         // host bits set
	f.Add([]byte("rules:\n  - match: AS64497\n  - match: 198.19.1.0/24\n"))  // AS and CIDR tie
	f.Add([]byte("rules:\n  - match: AS99\n"))                               // unknown AS
	f.Add([]byte("rules:\n  - match: &a 10.0.0.0/8\n  - match: *a\n"))       // anchor and alias: a duplicate
	f.Add([]byte("default: {allow: [1-65535]}\n"))                           // the widest range
	f.Add([]byte("rules:\n- match: [1.2.3.4, 0.0.0.0/0]\n  allow: [any]\n")) // list match with the whole space
	f.Add([]byte("rules:\n  - match: 10.0.0.0/8\n   owner: x\n"))            // bad indentation
	f.Add([]byte("rules: [\n"))                                              // unterminated flow sequence
	db := openASN(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy("fuzz.yaml", data, db)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 1 || !strings.HasPrefix(err.Error(), fmt.Sprintf("fuzz.yaml:%d:%d: ", pe.Line, pe.Column)) {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		for _, r := range p.Rules {
			if len(r.Prefixes) == 0 {
				t.Fatalf("rule %q covers nothing", r.Match)
			}
			for _, pfx := range r.Prefixes {
				if !pfx.Addr().Is4() || pfx.Masked() != pfx {
					t.Fatalf("rule %q: invalid prefix %s", r.Match, pfx)
				}
				got := p.RuleFor(u32(pfx.Addr()))
				found := false
				for _, q := range got.Prefixes {
					found = found || q.Contains(pfx.Addr()) && q.Bits() >= pfx.Bits()
				}
				if !found {
					t.Fatalf("RuleFor(%s) = %q, not a rule at least as specific as %q's %s", pfx.Addr(), got.Match, r.Match, pfx)
				}
			}
		}
	})
}

// TestNearestOwner: the most specific rule with an owner, then the
// default's owner, else none.
func TestNearestOwner(t *testing.T) {
	p, err := ParsePolicy("p.yaml", []byte(`default: {owner: sec-team, allow: []}
rules:
  - {match: 198.51.100.0/24, owner: net-team, allow: [22]}
  - {match: 198.51.100.7, allow: [5432]}
  - {match: 203.0.113.0/24, allow: [80]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr  string
		owner string
		match string
	}{
		{"198.51.100.7", "net-team", "198.51.100.0/24"}, // its own rule has no owner
		{"198.51.100.8", "net-team", "198.51.100.0/24"},
		{"203.0.113.5", "sec-team", "default"}, // no owner on the way: the default's
		{"192.0.2.1", "sec-team", "default"},
	} {
		r := p.NearestOwner(ip(tc.addr))
		if r == nil || r.Owner != tc.owner || r.Match != tc.match {
			t.Errorf("%s: %+v, want %s from %s", tc.addr, r, tc.owner, tc.match)
		}
	}
	if r := (*Policy)(nil).NearestOwner(ip("192.0.2.1")); r != nil {
		t.Errorf("nil policy: %+v", r)
	}
}
