package target

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Entry is one parsed target, allowlist or blocklist line.
type Entry struct {
	// Source names where the entry came from: "FILE:LINE" or "argument N".
	Source string
	// Text is the entry as written, without comment and surrounding space.
	Text string
	// First and Last bound the inclusive address range (IPv4, host order).
	// Unset for AS entries.
	First, Last uint32
	// ASN is the autonomous system number of an "AS64496" entry.
	ASN uint32
	// IsASN marks an AS entry, which needs an ASN dataset to expand.
	IsASN bool
	// Warning is set when the entry was accepted with a change the user
	// should hear about (a CIDR with host bits set is masked).
	Warning string
}

// Size is the number of addresses in the entry's range (0 for AS entries).
func (e Entry) Size() uint64 {
	if e.IsASN {
		return 0
	}
	return uint64(e.Last) - uint64(e.First) + 1
}

// ErrIPv6 is wrapped by the error for a well-formed IPv6 entry: reach scans
// IPv4 only, so far. Allow and block lists skip such entries (ReadFilterList).
var ErrIPv6 = errors.New("IPv6 targets are not supported yet")

// ParseEntry parses one target: an IPv4 address (a /32), a CIDR, an
// inclusive range "a-b", or an AS number "AS64496". Leading and trailing
// space and a "#" comment are ignored. Hostnames and IPv6 are errors.
func ParseEntry(s string) (Entry, error) {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	e := Entry{Text: s}
	switch {
	case s == "":
		return e, errors.New("empty target")
	case s[0] == '@':
		return e, fmt.Errorf("%s: @FILE lists are read only from the command line, not from inside a list", quote(s))
	case strings.ContainsAny(s, " \t,"):
		return e, fmt.Errorf("%s: one target per entry (address, CIDR, range or AS number)", quote(s))
	case len(s) > 2 && strings.EqualFold(s[:2], "AS") && isDigits(s[2:]):
		n, err := strconv.ParseUint(s[2:], 10, 32)
		if err != nil {
			return e, fmt.Errorf("%s: AS number out of range (0 to 4294967295)", quote(s))
		}
		e.ASN, e.IsASN = uint32(n), true
		return e, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return e, fmt.Errorf("%s: %w", quote(s), explain(s, err))
		}
		if err := notIPv4(p.Addr()); err != nil {
			return e, fmt.Errorf("%s: %w", quote(s), err)
		}
		if m := p.Masked(); m != p {
			e.Warning = fmt.Sprintf("%s has host bits set; scanning %s", s, m)
			p = m
		}
		e.First = U32(p.Addr())
		e.Last = e.First | uint32(uint64(1)<<(32-p.Bits())-1)
		return e, nil
	case strings.Contains(s, "-"):
		lo, hi, _ := strings.Cut(s, "-")
		a, err := parseAddr(strings.TrimSpace(lo))
		if err != nil {
			return e, fmt.Errorf("%s: range start: %w", quote(s), err)
		}
		b, err := parseAddr(strings.TrimSpace(hi))
		if err != nil {
			return e, fmt.Errorf("%s: range end: %w", quote(s), err)
		}
		if b < a {
			return e, fmt.Errorf("%s: reversed range: end is below start", quote(s))
		}
		e.First, e.Last = a, b
		return e, nil
	default:
		a, err := parseAddr(s)
		if err != nil {
			return e, fmt.Errorf("%s: %w", quote(s), err)
		}
		e.First, e.Last = a, a
		return e, nil
	}
}

func parseAddr(s string) (uint32, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return 0, explain(s, err)
	}
	if err := notIPv4(a); err != nil {
		return 0, err
	}
	return U32(a), nil
}

// notIPv4 says why a parsed address is no IPv4 target. An IPv4-mapped IPv6
// address names an IPv4 host, so it is an error to fix, never an entry to
// skip: a blocklist that dropped it would scan the host it meant to block.
func notIPv4(a netip.Addr) error {
	switch {
	case a.Is4():
		return nil
	case a.Is4In6():
		return fmt.Errorf("IPv4-mapped IPv6 address: write it as %s", a.Unmap())
	default:
		return ErrIPv6
	}
}

// explain turns a parse failure into what the user most likely meant.
func explain(s string, err error) error {
	host, _, _ := strings.Cut(s, "/")
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		msg = msg[i+3:] // drop netip's echo of the input
	}
	if strings.Contains(host, ":") {
		return errors.New("not a valid IPv6 address (and IPv6 targets are not supported yet): " + msg)
	}
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return errors.New("not an IPv4 address: hostnames are not resolved; give an address, CIDR, range or AS number")
		}
	}
	return errors.New("not an IPv4 address, CIDR or range: " + msg)
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// ParseArgs parses command-line targets; an argument may hold several
// entries separated by commas. Sources are "argument N" (1-based).
func ParseArgs(args []string) ([]Entry, error) {
	var out []Entry
	var errs []error
	for i, a := range args {
		for f := range strings.SplitSeq(a, ",") {
			if strings.TrimSpace(f) == "" {
				continue
			}
			e, err := ParseEntry(f)
			e.Source = fmt.Sprintf("argument %d", i+1)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.Source, err))
				continue
			}
			out = append(out, e)
		}
	}
	return out, errors.Join(errs...)
}

// maxListErrors caps how many bad lines one error reports.
const maxListErrors = 10

// maxLineBytes is the longest line a target list may have.
const maxLineBytes = 1 << 20

// maxQuoted is how much of a bad entry an error message quotes.
const maxQuoted = 64

// quote quotes s for an error message, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q… (%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// ReadList parses a target list: one entry a line, "#" comments, blank lines,
// CRLF line ends and a last line without newline are all accepted. name is
// used in sources and errors ("FILE:LINE: ..."). Every bad line is an error
// (the first ten are reported), an IPv6 line too; no entry is returned with
// an error.
func ReadList(name string, r io.Reader) ([]Entry, error) {
	es, _, err := readList(name, r, false)
	return es, err
}

// Skipped tells which well-formed IPv6 lines an allow or block list held.
type Skipped struct {
	// Count is the number of IPv6 lines skipped.
	Count int
	// First is the source ("FILE:LINE") and Text the entry of the first.
	First, Text string
}

// ReadFilterList parses an allowlist or blocklist like ReadList, except that
// well-formed IPv6 entries are skipped and counted instead of failing the
// list: an IPv4 scan must not abort on a list shared with IPv6 tools (ZMap
// does the same since 4.1). Malformed lines are still errors.
func ReadFilterList(name string, r io.Reader) ([]Entry, Skipped, error) {
	return readList(name, r, true)
}

func readList(name string, r io.Reader, skipIPv6 bool) ([]Entry, Skipped, error) {
	var skipped Skipped
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLineBytes)
	var out []Entry
	var errs []error
	bad, lastLine := 0, 0
	for line := 1; sc.Scan(); line++ {
		lastLine = line
		text := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF") // UTF-8 byte order mark
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		e, err := ParseEntry(text)
		e.Source = name + ":" + strconv.Itoa(line)
		if skipIPv6 && errors.Is(err, ErrIPv6) {
			if skipped.Count == 0 {
				skipped.First, skipped.Text = e.Source, e.Text
			}
			skipped.Count++
			continue
		}
		if err != nil {
			bad++
			if bad <= maxListErrors {
				errs = append(errs, fmt.Errorf("%s: %w", e.Source, err))
			}
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, Skipped{}, fmt.Errorf("%s:%d: line longer than %d bytes", name, lastLine+1, maxLineBytes)
		}
		return nil, Skipped{}, fmt.Errorf("read %s: %w", name, err)
	}
	if bad > maxListErrors {
		errs = append(errs, fmt.Errorf("%s: %d more bad lines", name, bad-maxListErrors))
	}
	if len(errs) > 0 {
		return nil, Skipped{}, errors.Join(errs...)
	}
	return out, skipped, nil
}

// ReadFile opens path and parses it with ReadList.
func ReadFile(path string) ([]Entry, error) {
	es, _, err := readFile(path, false)
	return es, err
}

// ReadFilterFile opens path and parses it with ReadFilterList.
func ReadFilterFile(path string) ([]Entry, Skipped, error) {
	return readFile(path, true)
}

func readFile(path string, skipIPv6 bool) ([]Entry, Skipped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Skipped{}, fmt.Errorf("open target list: %w", err)
	}
	defer f.Close()
	return readList(path, f, skipIPv6)
}

// U32 returns an IPv4 address as a host-order integer. a must be IPv4.
func U32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Addr returns the IPv4 address of a host-order integer.
func Addr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
