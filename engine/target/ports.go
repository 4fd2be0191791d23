package target

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParsePorts parses a port list such as "22,80,443,8000-8100" into sorted,
// distinct ports. Ranges are inclusive. Port 0, ports above 65535, reversed
// ranges and an empty list are errors; there is no default list.
func ParsePorts(s string) ([]uint16, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty port list: give ports such as -p 22,80,443 or -p 1-65535")
	}
	var seen [65536 / 64]uint64
	n := 0
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("port list %q: empty item", s)
		}
		lo, hi := f, f
		if a, b, ok := strings.Cut(f, "-"); ok {
			lo, hi = strings.TrimSpace(a), strings.TrimSpace(b)
		}
		a, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %q: %w", s, f, err)
		}
		b, err := parsePort(hi)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %q: %w", s, f, err)
		}
		if b < a {
			return nil, fmt.Errorf("port list %q: %q: reversed range", s, f)
		}
		for p := a; p <= b; p++ {
			if seen[p/64]&(1<<(p%64)) == 0 {
				seen[p/64] |= 1 << (p % 64)
				n++
			}
		}
	}
	out := make([]uint16, 0, n)
	for p := 1; p < 65536; p++ {
		if seen[p/64]&(1<<(p%64)) != 0 {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port number")
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("not a port number")
	}
	if v == 0 || v > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", v)
	}
	return int(v), nil
}

// FormatPorts writes ports (sorted) back in the compact list form, with runs
// as ranges: [22 80 81 82] → "22,80-82".
func FormatPorts(ports []uint16) string {
	p := slices.Clone(ports)
	slices.Sort(p)
	var b strings.Builder
	for i := 0; i < len(p); {
		j := i
		for j+1 < len(p) && p[j+1] == p[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p[i])))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(p[j])))
		}
		i = j + 1
	}
	return b.String()
}
