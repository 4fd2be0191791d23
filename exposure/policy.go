package exposure

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
	"go4.org/netipx"

	"github.com/reachscan/reach/engine/target/asn"
	"github.com/reachscan/reach/export"
)

// ASNResolver expands AS numbers into the IPv4 ranges they originate. An
// *asn.DB is one. An AS it does not know is an error.
type ASNResolver interface {
	Resolve(asns []uint32) (map[uint32][]netipx.IPRange, error)
}

// Policy is a parsed intended-exposure policy: which addresses may expose
// which ports and services, and who owns them. The zero value and a nil
// *Policy allow nothing and name no owner.
type Policy struct {
	Default Rule   // applies to addresses no rule matches
	Rules   []Rule // in file order

	// byLen[n] maps a /n network (host order, masked) to its entry.
	byLen [33]map[uint32]entry
}

type entry struct {
	rule   int  // index into Rules
	fromAS bool // the prefix came from an AS in the ASN dataset
}

// Rule is one policy entry.
type Rule struct {
	Match    string         // as written: "198.19.1.0/24", "198.19.1.1", "AS64496", several joined by ", "; "default" for the default
	Prefixes []netip.Prefix // the IPv4 networks Match covers, masked
	Owner    string         // who answers for these addresses; "" = nobody declared
	Note     string         // free text shown with findings
	Allow    Allow          // what may be exposed
	Line     int            // where the rule starts in the policy file, 1-based; 0 for an absent default
	Column   int
}

// Allow is what a rule permits: ports, port ranges, service names, or
// anything.
type Allow struct {
	Any      bool
	Ports    [][2]uint16 // inclusive ranges; a single port is [p, p]
	Services []string    // service names as the grabbers set them, plus "https"
}

// Allows reports whether the row's port or identified service is permitted.
// A service name matches only an identified service: list the port too to
// allow the service where it was not identified. "https" matches HTTP
// spoken over TLS; "http" matches HTTP with or without TLS.
func (a Allow) Allows(r export.Row) bool {
	if a.Any {
		return true
	}
	for _, pr := range a.Ports {
		if r.Port >= pr[0] && r.Port <= pr[1] {
			return true
		}
	}
	for _, s := range a.Services {
		if s == r.Service || s == "https" && (r.Service == "http" && r.TLS.SHA256 != "" || r.Service == "tls") {
			return true
		}
	}
	return false
}

// String lists what is allowed as written in a policy: "80, 443, 8000-8099, ssh";
// "nothing" when empty.
func (a Allow) String() string {
	if a.Any {
		return "any"
	}
	var parts []string
	for _, pr := range a.Ports {
		if pr[0] == pr[1] {
			parts = append(parts, strconv.Itoa(int(pr[0])))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", pr[0], pr[1]))
		}
	}
	parts = append(parts, a.Services...)
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// NearestOwner returns the most specific rule covering addr that names an
// owner (the default rule last), or nil: whom to ask about an ownerless
// finding.
func (p *Policy) NearestOwner(addr uint32) *Rule {
	if p == nil {
		return nil
	}
	for n := 32; n >= 0; n-- {
		if e, ok := p.byLen[n][addr&mask(n)]; ok && p.Rules[e.rule].Owner != "" {
			return &p.Rules[e.rule]
		}
	}
	if p.Default.Owner != "" {
		return &p.Default
	}
	return nil
}

// RuleFor returns the rule that governs addr (host order): the rule with the
// longest prefix containing it; between an address or CIDR rule and an AS
// prefix of the same length, the address or CIDR rule; between two AS
// prefixes of the same length, the rule earlier in the file. With no match it
// returns the default rule.
func (p *Policy) RuleFor(addr uint32) *Rule {
	if p == nil {
		return &Rule{Match: "default"}
	}
	for n := 32; n >= 0; n-- {
		m := p.byLen[n]
		if m == nil {
			continue
		}
		if e, ok := m[addr&mask(n)]; ok {
			return &p.Rules[e.rule]
		}
	}
	return &p.Default
}

func mask(n int) uint32 {
	if n == 0 {
		return 0
	}
	return ^uint32(0) << (32 - n)
}

// PolicyError is a policy that cannot be used, with where the problem is.
type PolicyError struct {
	File         string
	Line, Column int // 1-based
	Msg          string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// LoadPolicy reads and parses the policy file at path; see ParsePolicy.
func LoadPolicy(path string, res ASNResolver) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return ParsePolicy(path, data, res)
}

// The YAML shapes. Nodes are kept where a value needs checking, so errors
// can point at it.
type policyDoc struct {
	Default *defaultDoc `yaml:"default"`
	Rules   ast.Node    `yaml:"rules"` // a sequence of rules
}

type defaultDoc struct {
	Owner string   `yaml:"owner"`
	Allow ast.Node `yaml:"allow"` // a sequence
	Note  string   `yaml:"note"`
}

type ruleDoc struct {
	Match ast.Node `yaml:"match"` // a scalar or a sequence of scalars
	Owner string   `yaml:"owner"`
	Allow ast.Node `yaml:"allow"` // a sequence
	Note  string   `yaml:"note"`
}

// ParsePolicy parses a policy (the format is in the package doc). name is
// used in errors, which read "name:line:column: message". AS entries are
// expanded through res; res may be nil when the policy names no AS.
func ParsePolicy(name string, data []byte, res ASNResolver) (*Policy, error) {
	ps := &parser{name: name}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var doc policyDoc
	if err := yaml.UnmarshalWithOptions(data, &doc, yaml.Strict()); err != nil {
		return nil, ps.yamlErr(err)
	}

	p := &Policy{Default: Rule{Match: "default"}}
	if doc.Default != nil {
		d := doc.Default
		allow, err := ps.allow(d.Allow)
		if err != nil {
			return nil, err
		}
		p.Default = Rule{Match: "default", Owner: d.Owner, Note: d.Note, Allow: allow}
	}
	type asRef struct {
		rule int
		asn  uint32
		at   token.Position
	}
	var asRefs []asRef
	seen := map[netip.Prefix]int{} // CIDR → rule index, to refuse duplicates
	rules, err := ps.list("rules", doc.Rules)
	if err != nil {
		return nil, err
	}
	for _, it := range rules {
		at := it.at
		if it.node == nil || it.node.Type() != ast.MappingType {
			return nil, ps.errAt(at, "rules: want a mapping with match, owner, allow and note")
		}
		var rd ruleDoc
		if err := yaml.NodeToValue(it.node, &rd, yaml.Strict()); err != nil {
			return nil, ps.yamlErr(err)
		}
		if isNull(rd.Match) {
			return nil, ps.errAt(at, "rule has no match: want a CIDR, an address or an AS number")
		}
		r := Rule{Owner: rd.Owner, Note: rd.Note, Line: at.Line, Column: at.Column}
		var err error
		if r.Allow, err = ps.allow(rd.Allow); err != nil {
			return nil, err
		}
		idx := len(p.Rules)
		var texts []string
		for _, m := range scalars(rd.Match) {
			text, mp := scalarText(m.node), m.at
			if text == "" {
				return nil, ps.errAt(mp, "match: want a CIDR, an address or an AS number")
			}
			texts = append(texts, text)
			if a, ok, err := parseAS(text); ok {
				if err != nil {
					return nil, ps.errAt(mp, err.Error())
				}
				asRefs = append(asRefs, asRef{idx, a, mp})
				continue
			}
			pfx, err := parseTarget(text)
			if err != nil {
				return nil, ps.errAt(mp, err.Error())
			}
			if prev := slices.Index(r.Prefixes, pfx); prev >= 0 {
				return nil, ps.errAt(mp, fmt.Sprintf("%s is listed twice in this rule", pfx))
			}
			if prev, dup := seen[pfx]; dup {
				return nil, ps.errAt(mp, fmt.Sprintf("%s is already matched by the rule at line %d", pfx, p.Rules[prev].Line))
			}
			seen[pfx] = idx
			r.Prefixes = append(r.Prefixes, pfx)
		}
		if len(texts) == 0 {
			return nil, ps.errAt(pos(rd.Match), "match: want a CIDR, an address or an AS number")
		}
		r.Match = strings.Join(texts, ", ")
		p.Rules = append(p.Rules, r)
	}
	for i := range p.Rules {
		for _, pfx := range p.Rules[i].Prefixes {
			p.add(pfx, entry{rule: i})
		}
	}
	if len(asRefs) == 0 {
		return p, nil
	}
	if res == nil {
		return nil, ps.errAt(asRefs[0].at, fmt.Sprintf("AS%d: AS entries need an ASN dataset (reach review --asn-db FILE)", asRefs[0].asn))
	}
	var want []uint32
	for _, a := range asRefs {
		if !slices.Contains(want, a.asn) {
			want = append(want, a.asn)
		}
	}
	ranges, err := res.Resolve(want)
	var nf *asn.NotFoundError
	if errors.As(err, &nf) && len(nf.ASNs) > 0 {
		for _, a := range asRefs {
			if a.asn == nf.ASNs[0] {
				return nil, ps.errAt(a.at, err.Error())
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: resolve AS entries: %w", name, err)
	}
	for _, a := range asRefs {
		rs, ok := ranges[a.asn]
		if !ok || len(rs) == 0 {
			return nil, ps.errAt(a.at, fmt.Sprintf("AS%d not found in the ASN dataset", a.asn))
		}
		r := &p.Rules[a.rule]
		for _, rg := range rs {
			if !rg.From().Is4() {
				continue
			}
			for _, pfx := range rg.Prefixes() {
				r.Prefixes = append(r.Prefixes, pfx)
				p.add(pfx, entry{rule: a.rule, fromAS: true})
			}
		}
	}
	return p, nil
}

// add indexes pfx. An address or CIDR rule replaces an AS prefix of the
// same length; otherwise the first entry stays.
func (p *Policy) add(pfx netip.Prefix, e entry) {
	n := pfx.Bits()
	if p.byLen[n] == nil {
		p.byLen[n] = map[uint32]entry{}
	}
	k := u32(pfx.Addr())
	if old, ok := p.byLen[n][k]; ok && !(old.fromAS && !e.fromAS) {
		return
	}
	p.byLen[n][k] = e
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// parseAS recognises "AS64496" (any case); ok is false when s is not an AS
// entry at all.
func parseAS(s string) (uint32, bool, error) {
	if len(s) < 2 || !strings.EqualFold(s[:2], "as") {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s[2:], 10, 32)
	if err != nil {
		return 0, true, fmt.Errorf("%q: want an AS number like AS64496", s)
	}
	return uint32(v), true, nil
}

// parseTarget reads an IPv4 address (a /32) or CIDR. Host bits must be
// clear, so a typo does not silently widen a rule.
func parseTarget(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: not a CIDR", s)
		}
		if !pfx.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("%q: not an IPv4 CIDR", s)
		}
		if m := pfx.Masked(); m != pfx {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %s", s, m)
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: want a CIDR, an address or an AS number", s)
	}
	if !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: not an IPv4 address", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

type parser struct{ name string }

func (ps *parser) errAt(p token.Position, msg string) error {
	return &PolicyError{File: ps.name, Line: max(p.Line, 1), Column: max(p.Column, 1), Msg: msg}
}

// yamlErr turns a go-yaml error into a PolicyError at its token.
func (ps *parser) yamlErr(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		field := "value"
		if te.StructFieldName != nil {
			_, f, _ := strings.Cut(*te.StructFieldName, ".")
			field = strings.ToLower(f)
		}
		var p token.Position
		if te.Token != nil && te.Token.Position != nil {
			p = *te.Token.Position
		}
		want := "text"
		if te.DstType != nil && te.DstType.Kind() != reflect.String {
			want = "a list"
		}
		return ps.errAt(p, fmt.Sprintf("%s: want %s", field, want))
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		var p token.Position
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p = *tk.Position
		}
		return ps.errAt(p, strings.TrimSpace(ye.GetMessage()))
	}
	return ps.errAt(token.Position{}, err.Error())
}

// allow parses an allow list, or a single entry: ports (1-65535), ranges
// "8000-8099", service names, or "any".
func (ps *parser) allow(n ast.Node) (Allow, error) {
	var a Allow
	if isNull(n) {
		return a, nil
	}
	for _, it := range scalars(n) {
		text, at := scalarText(it.node), it.at
		if text == "" {
			return Allow{}, ps.errAt(at, "allow: want a port, a port range, a service name or \"any\"")
		}
		switch lo, hi, isPort, err := parsePorts(text); {
		case err != nil:
			return Allow{}, ps.errAt(at, err.Error())
		case isPort:
			a.Ports = append(a.Ports, [2]uint16{lo, hi})
			continue
		}
		s := strings.ToLower(text)
		switch {
		case s == "any":
			a.Any = true
		case slices.Contains(KnownServices(), s):
			if !slices.Contains(a.Services, s) {
				a.Services = append(a.Services, s)
			}
		default:
			return Allow{}, ps.errAt(at, fmt.Sprintf("allow: unknown service %q; want a port, a port range, \"any\" or one of %s",
				text, strings.Join(KnownServices(), ", ")))
		}
	}
	return a, nil
}

// parsePorts reads "443" or "8000-8099". isPort is false when text does not
// start with a digit (a service name).
func parsePorts(text string) (lo, hi uint16, isPort bool, err error) {
	if text == "" || text[0] < '0' || text[0] > '9' {
		return 0, 0, false, nil
	}
	one := func(s string) (uint16, error) {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("port %q: want 1-65535", s)
		}
		return uint16(v), nil
	}
	a, b, isRange := strings.Cut(text, "-")
	if lo, err = one(a); err != nil {
		return 0, 0, true, err
	}
	hi = lo
	if isRange {
		if hi, err = one(b); err != nil {
			return 0, 0, true, err
		}
		if hi < lo {
			return 0, 0, true, fmt.Errorf("port range %q is reversed", text)
		}
	}
	return lo, hi, true, nil
}

func isNull(n ast.Node) bool {
	return n == nil || n.Type() == ast.NullType
}

// item is a sequence entry and where it is; node is nil for an empty entry.
type item struct {
	node ast.Node
	at   token.Position
}

// items returns the entries of a sequence, each with its position (the
// entry's "-" when it is empty).
func items(s *ast.SequenceNode) []item {
	out := make([]item, len(s.Values))
	for i, v := range s.Values {
		out[i] = item{v, pos(v)}
		if v == nil || v.Type() == ast.NullType || out[i].at.Line == 0 {
			switch {
			case i < len(s.Entries) && s.Entries[i] != nil && s.Entries[i].Start != nil && s.Entries[i].Start.Position != nil:
				out[i].at = *s.Entries[i].Start.Position
			case s.Start != nil && s.Start.Position != nil:
				out[i].at = *s.Start.Position
			}
		}
	}
	return out
}

// list reads an optional sequence; null or absent is empty.
func (ps *parser) list(key string, n ast.Node) ([]item, error) {
	if isNull(n) {
		return nil, nil
	}
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil, ps.errAt(pos(n), key+": want a list")
	}
	return items(s), nil
}

// scalars returns n itself, or the items of a sequence.
func scalars(n ast.Node) []item {
	if s, ok := n.(*ast.SequenceNode); ok {
		return items(s)
	}
	return []item{{n, pos(n)}}
}

// scalarText is the text of a scalar node as written (so "0443" stays
// "0443"); "" for anything else.
func scalarText(n ast.Node) string {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.LiteralNode:
		if tk := n.GetToken(); tk != nil {
			return strings.TrimSpace(tk.Value)
		}
	}
	return ""
}

// pos is where n starts: for a mapping, its first key.
func pos(n ast.Node) token.Position {
	if n == nil {
		return token.Position{}
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		return pos(m.Values[0].Key)
	}
	if m, ok := n.(*ast.MappingValueNode); ok {
		return pos(m.Key)
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return *tk.Position
	}
	return token.Position{}
}
