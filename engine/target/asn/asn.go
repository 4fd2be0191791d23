// Package asn reads IP-to-AS datasets and expands AS numbers into the IPv4
// ranges they originate. The format is recognised by content, not by file
// name, gzipped or not:
//
//   - CAIDA RouteViews pfx2as: "prefix<TAB>length<TAB>asn", where asn may be a
//     multi-origin list "a_b" or an AS-set "a,b"; the prefix counts for each
//     AS named.
//   - iptoasn ip2asn TSV: "start<TAB>end<TAB>asn<TAB>country<TAB>description",
//     inclusive ranges; AS 0 means "not routed" and is never matched.
//   - ip-location-db CSV: "start,end,asn,organisation", with dotted or
//     numeric addresses, inclusive ranges.
//   - MaxMind GeoLite2-ASN (and compatible) mmdb files, field
//     autonomous_system_number.
//
// IPv6 rows are skipped: reach scans IPv4.
package asn

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
	"go4.org/netipx"
)

// Format names a dataset layout.
type Format string

// The dataset formats DB recognises.
const (
	FormatPfx2as            Format = "caida-pfx2as"
	FormatIP2ASN            Format = "iptoasn-tsv"
	FormatIPLocationDB      Format = "ip-location-db-csv"
	FormatMMDB              Format = "mmdb"
	mmdbMetadataMarker             = "\xab\xcd\xefMaxMind.com"
	gzipMagic                      = "\x1f\x8b"
	maxDatasetBytes                = 1 << 30
	sniffLines                     = 20
	mmdbMetadataSearchBytes        = 128 * 1024
)

// DB is an ASN dataset on disk. It is read again for each Resolve call and
// keeps nothing else in memory.
type DB struct {
	path   string
	format Format
}

// Open recognises the dataset at path. It fails when the file cannot be read
// or its content matches no known format.
func Open(path string) (*DB, error) {
	data, err := readHead(path, 64*1024)
	if err != nil {
		return nil, err
	}
	f, err := sniff(path, data)
	if err != nil {
		return nil, err
	}
	return &DB{path: path, format: f}, nil
}

// Format is the recognised layout.
func (db *DB) Format() Format { return db.format }

// Path is the dataset file.
func (db *DB) Path() string { return db.path }

// readHead returns the first n bytes of the (decompressed) file.
func readHead(path string, n int64) ([]byte, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	b, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return nil, fmt.Errorf("read ASN dataset %s: %w", path, err)
	}
	return b, nil
}

func openMaybeGzip(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open ASN dataset: %w", err)
	}
	br := bufio.NewReaderSize(f, 256*1024)
	magic, _ := br.Peek(2)
	if string(magic) != gzipMagic {
		return br, func() { f.Close() }, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open ASN dataset %s: %w", path, err)
	}
	return zr, func() { zr.Close(); f.Close() }, nil
}

// sniff decides the format from the file's first bytes (decompressed).
func sniff(path string, head []byte) (Format, error) {
	if isMMDB(path) {
		return FormatMMDB, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(head))
	for checked := 0; sc.Scan() && checked < sniffLines; {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\uFEFF"))
		if line == "" || line[0] == '#' {
			continue
		}
		checked++
		if f := lineFormat(line); f != "" {
			return f, nil
		}
	}
	first, _, _ := strings.Cut(string(head), "\n")
	if len(first) > 80 {
		first = first[:80]
	}
	return "", fmt.Errorf("ASN dataset %s: unrecognised format (first line %q); want CAIDA pfx2as, iptoasn TSV, ip-location-db CSV or MaxMind mmdb", path, first)
}

func lineFormat(line string) Format {
	if f := strings.Split(line, "\t"); len(f) >= 3 {
		if _, err := netip.ParseAddr(f[0]); err == nil {
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 0 && n <= 128 && len(f) == 3 {
				return FormatPfx2as
			}
			if _, err := netip.ParseAddr(f[1]); err == nil {
				return FormatIP2ASN
			}
		}
		return ""
	}
	f, err := csv.NewReader(strings.NewReader(line)).Read()
	if err == nil && len(f) >= 3 {
		if _, _, err := parseAddrOrNumber(f[0]); err == nil {
			if _, _, err := parseAddrOrNumber(f[1]); err == nil {
				return FormatIPLocationDB
			}
		}
	}
	return ""
}

// isMMDB looks for the MaxMind metadata marker in the file's tail.
func isMMDB(path string) bool {
	data, err := mmdbBytes(path)
	return err == nil && data != nil
}

// mmdbBytes returns the whole file (decompressed) when it is an mmdb, or nil.
func mmdbBytes(path string) ([]byte, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, nil
	}
	// text datasets start with a digit, '#' or a BOM; an mmdb starts with its
	// binary search tree.
	if looksText(head) {
		return nil, nil
	}
	rest, err := io.ReadAll(io.LimitReader(r, maxDatasetBytes))
	if err != nil {
		return nil, fmt.Errorf("read ASN dataset %s: %w", path, err)
	}
	data := append(head, rest...)
	tail := data[max(0, len(data)-mmdbMetadataSearchBytes):]
	if !bytes.Contains(tail, []byte(mmdbMetadataMarker)) {
		return nil, nil
	}
	return data, nil
}

func looksText(b []byte) bool {
	for _, c := range b {
		if c != '\t' && c != '\n' && c != '\r' && (c < 0x20 || c > 0x7e) {
			return c == 0xef // UTF-8 BOM
		}
	}
	return true
}

// Resolve returns, for each AS number asked, its IPv4 ranges merged and
// sorted. An AS with no IPv4 range in the dataset is an error naming it.
func (db *DB) Resolve(asns []uint32) (map[uint32][]netipx.IPRange, error) {
	want := make(map[uint32]*netipx.IPSetBuilder, len(asns))
	for _, a := range asns {
		want[a] = new(netipx.IPSetBuilder)
	}
	add := func(asn uint32, r netipx.IPRange) {
		if b, ok := want[asn]; ok && r.From().Is4() {
			b.AddRange(r)
		}
	}
	var err error
	switch db.format {
	case FormatMMDB:
		err = db.readMMDB(add)
	default:
		err = db.readText(add)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]netipx.IPRange, len(want))
	var missing []uint32
	for _, a := range asns {
		s, err := want[a].IPSet()
		if err != nil {
			return nil, fmt.Errorf("AS%d: %w", a, err)
		}
		if len(s.Ranges()) == 0 {
			if !slices.Contains(missing, a) {
				missing = append(missing, a)
			}
			continue
		}
		out[a] = s.Ranges()
	}
	if len(missing) > 0 {
		return nil, &NotFoundError{ASNs: missing, Path: db.path, Format: db.format}
	}
	return out, nil
}

// NotFoundError lists AS numbers with no IPv4 range in a dataset.
type NotFoundError struct {
	ASNs   []uint32
	Path   string
	Format Format
}

func (e *NotFoundError) Error() string {
	names := make([]string, len(e.ASNs))
	for i, a := range e.ASNs {
		names[i] = "AS" + strconv.FormatUint(uint64(a), 10)
	}
	return fmt.Sprintf("%s not found in ASN dataset %s (%s)", strings.Join(names, ", "), e.Path, e.Format)
}

// MissingASNs returns the AS numbers not found.
func (e *NotFoundError) MissingASNs() []uint32 { return e.ASNs }

func (db *DB) readText(add func(uint32, netipx.IPRange)) error {
	r, closeFn, err := openMaybeGzip(db.path)
	if err != nil {
		return err
	}
	defer closeFn()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var err error
		switch db.format {
		case FormatPfx2as:
			err = parsePfx2as(text, add)
		case FormatIP2ASN:
			err = parseIP2ASN(text, add)
		case FormatIPLocationDB:
			err = parseIPLocationDB(text, add)
		}
		if err != nil {
			return fmt.Errorf("ASN dataset %s:%d: %w", db.path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read ASN dataset %s: %w", db.path, err)
	}
	return nil
}

func parsePfx2as(line string, add func(uint32, netipx.IPRange)) error {
	f := strings.Split(line, "\t")
	if len(f) != 3 {
		return fmt.Errorf("want prefix, length and AS separated by tabs, got %d fields", len(f))
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	bits, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("prefix length %q: not a number", f[1])
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return fmt.Errorf("prefix %s/%s: %w", f[0], f[1], err)
	}
	r := netipx.RangeOfPrefix(p)
	// multi-origin "a_b" and AS-sets "a,b": the prefix counts for every AS
	for _, s := range strings.FieldsFunc(f[2], func(r rune) bool { return r == '_' || r == ',' }) {
		asn, err := parseASN(s)
		if err != nil {
			return err
		}
		add(asn, r)
	}
	return nil
}

func parseIP2ASN(line string, add func(uint32, netipx.IPRange)) error {
	f := strings.Split(line, "\t")
	if len(f) < 3 {
		return fmt.Errorf("want start, end, AS, country, description separated by tabs, got %d fields", len(f))
	}
	return addRange(f[0], f[1], f[2], add)
}

func parseIPLocationDB(line string, add func(uint32, netipx.IPRange)) error {
	f, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil {
		return fmt.Errorf("not a CSV row: %w", err)
	}
	if len(f) < 3 {
		return fmt.Errorf("want start, end, AS, organisation, got %d fields", len(f))
	}
	return addRange(f[0], f[1], f[2], add)
}

func addRange(start, end, as string, add func(uint32, netipx.IPRange)) error {
	lo, v4lo, err := parseAddrOrNumber(start)
	if err != nil {
		return fmt.Errorf("range start %q: %w", start, err)
	}
	hi, v4hi, err := parseAddrOrNumber(end)
	if err != nil {
		return fmt.Errorf("range end %q: %w", end, err)
	}
	if !v4lo || !v4hi {
		return nil // IPv6 row
	}
	if hi.Less(lo) {
		return fmt.Errorf("reversed range %s-%s", start, end)
	}
	asn, err := parseASN(as)
	if err != nil {
		return err
	}
	if asn == 0 {
		return nil // iptoasn: not routed
	}
	add(asn, netipx.IPRangeFrom(lo, hi))
	return nil
}

// parseAddrOrNumber parses a dotted address, an IPv6 address or a decimal
// number (numeric IPv4 up to 2^32−1; larger numbers are IPv6 rows).
func parseAddrOrNumber(s string) (netip.Addr, bool, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a, a.Is4(), nil
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return netip.Addr{}, false, errors.New("not an address")
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return netip.Addr{}, false, nil // a numeric IPv6 address
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

func parseASN(s string) (uint32, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "AS")
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("AS number %q: not a number in 0-4294967295", s)
	}
	return uint32(v), nil
}

type mmdbRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

func (db *DB) readMMDB(add func(uint32, netipx.IPRange)) error {
	data, err := mmdbBytes(db.path)
	if err != nil {
		return err
	}
	if data == nil {
		return fmt.Errorf("ASN dataset %s: not an mmdb file any more", db.path)
	}
	rd, err := maxminddb.OpenBytes(data)
	if err != nil {
		return fmt.Errorf("open mmdb %s: %w", db.path, err)
	}
	defer rd.Close()
	for res := range rd.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("read mmdb %s: %w", db.path, err)
		}
		var rec mmdbRecord
		if err := res.Decode(&rec); err != nil {
			return fmt.Errorf("read mmdb %s at %s: %w", db.path, res.Prefix(), err)
		}
		p := res.Prefix()
		if !p.Addr().Is4() || rec.ASN == 0 {
			continue
		}
		add(rec.ASN, netipx.RangeOfPrefix(p))
	}
	return nil
}
