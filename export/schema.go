// Package export declares reach's result schema once and writes results as
// Parquet, Arrow IPC, CSV and NDJSON, and reads them back.
package export

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Row is one result: a (target, port) that answered, with what was learnt.
// The grab and exposure fields are filled by later stages; empty means null.
type Row struct {
	Time   time.Time // when the reply arrived
	Addr   uint32    // target address, host order
	Port   uint16    // target port
	Status Status    // open (SYN-ACK) or closed (RST); reach grab on a list: open, closed, filtered or unknown
	TTL    uint8     // IPv4 TTL of the reply
	Window uint16    // TCP window of the reply
	MSS    uint16    // MSS option of the reply in bytes; 0 = absent (null)
	Probe  uint8     // which probe copy (--probes) was answered, 0-based
	Shard  uint16    // the shard that scanned it
	ASN    uint32    // origin AS; valid when HasASN
	HasASN bool

	Service, Product, Version string // identified service (grab)
	Banner                    []byte // first bytes the service sent (grab)
	GrabStatus                string // grab outcome: success, no-banner, timeout, refused, reset, tls-error, protocol-error
	GrabError                 string // why the grab did not succeed
	Auth                      string // "none": answered without credentials; "required"; "" unknown
	Details                   string // per-protocol details, a JSON object
	TLS                       TLSRow // leaf certificate and session, when TLS was spoken

	Class, Severity, Owner string // exposure review
	Reason                 string // exposure review: a sentence a reviewer understands
	Finding                string // review: unexpected, ownerless or expected; diff: new, gone or changed
}

// TLSRow holds the TLS columns: the session, the leaf certificate, and the
// whole chain as JSON. The zero value means no TLS.
type TLSRow struct {
	Version, Cipher, ALPN string
	Subject, Issuer, SANs string // SANs comma-separated
	NotBefore, NotAfter   time.Time
	SHA256                string // hex SHA-256 of the leaf's DER
	SelfSigned, Expired   bool
	Chain                 string // JSON array of every certificate, leaf first
}

// The fixed scan columns, in schema order; the grab and review columns
// (extras) follow them.
var scanColumns = []string{"ts", "ip", "ip_u32", "port", "status", "ttl", "window", "mss", "probe", "shard", "asn"}

// columns are every column name, in schema order.
var columns = func() []string {
	c := append([]string{}, scanColumns...)
	for _, e := range extras {
		c = append(c, e.name)
	}
	return c
}()

type kind int

const (
	kString kind = iota
	kBinary
	kTime
	kBool
)

// extra is one nullable grab or review column: its name, type, doc and
// where it lives in a Row. A string or binary is null when empty, a time
// when zero, a bool when the row has no TLS (valid reports false).
type extra struct {
	name, doc string
	kind      kind
	str       func(*Row) *string
	bin       func(*Row) *[]byte
	tm        func(*Row) *time.Time
	bl        func(*Row) *bool
}

func (e extra) valid(r *Row) bool { return r.TLS.SHA256 != "" } // bools: TLS only

var extras = []extra{
	{name: "service", doc: "identified service (http, ssh, redis, …)", str: func(r *Row) *string { return &r.Service }},
	{name: "product", doc: "identified product (nginx, OpenSSH, …)", str: func(r *Row) *string { return &r.Product }},
	{name: "version", doc: "identified version as announced", str: func(r *Row) *string { return &r.Version }},
	{name: "banner", doc: "first bytes the service sent, at most --max-banner", kind: kBinary, bin: func(r *Row) *[]byte { return &r.Banner }},
	{name: "grab_status", doc: "grab outcome: success, no-banner, timeout, refused, reset, tls-error, protocol-error, local-error (failed on the scanning host: says nothing about the target); null when never tried", str: func(r *Row) *string { return &r.GrabStatus }},
	{name: "grab_error", doc: "why the grab did not succeed", str: func(r *Row) *string { return &r.GrabError }},
	{name: "auth", doc: "none: the service answered without credentials; required: it asked for them", str: func(r *Row) *string { return &r.Auth }},
	{name: "details", doc: "per-protocol details, a JSON object of strings", str: func(r *Row) *string { return &r.Details }},
	{name: "tls_version", doc: "TLS version negotiated", str: func(r *Row) *string { return &r.TLS.Version }},
	{name: "tls_cipher", doc: "TLS cipher suite negotiated (IANA name)", str: func(r *Row) *string { return &r.TLS.Cipher }},
	{name: "tls_alpn", doc: "ALPN protocol negotiated", str: func(r *Row) *string { return &r.TLS.ALPN }},
	{name: "tls_subject", doc: "leaf certificate subject", str: func(r *Row) *string { return &r.TLS.Subject }},
	{name: "tls_issuer", doc: "leaf certificate issuer", str: func(r *Row) *string { return &r.TLS.Issuer }},
	{name: "tls_sans", doc: "leaf certificate subject alternative names, comma-separated", str: func(r *Row) *string { return &r.TLS.SANs }},
	{name: "tls_not_before", doc: "leaf certificate validity start, UTC", kind: kTime, tm: func(r *Row) *time.Time { return &r.TLS.NotBefore }},
	{name: "tls_not_after", doc: "leaf certificate validity end, UTC", kind: kTime, tm: func(r *Row) *time.Time { return &r.TLS.NotAfter }},
	{name: "tls_sha256", doc: "SHA-256 of the leaf certificate's DER, hex", str: func(r *Row) *string { return &r.TLS.SHA256 }},
	{name: "tls_self_signed", doc: "the leaf certificate signs itself", kind: kBool, bl: func(r *Row) *bool { return &r.TLS.SelfSigned }},
	{name: "tls_expired", doc: "the leaf certificate had expired at grab time", kind: kBool, bl: func(r *Row) *bool { return &r.TLS.Expired }},
	{name: "tls_chain", doc: "every certificate sent, leaf first, as a JSON array", str: func(r *Row) *string { return &r.TLS.Chain }},
	{name: "exposure_class", doc: "exposure class (data-service, remote-admin, web, …)", str: func(r *Row) *string { return &r.Class }},
	{name: "severity", doc: "exposure severity: info, low, medium, high, critical", str: func(r *Row) *string { return &r.Severity }},
	{name: "owner", doc: "declared owner", str: func(r *Row) *string { return &r.Owner }},
	{name: "exposure_reason", doc: "why the exposure has its class and severity, in a sentence", str: func(r *Row) *string { return &r.Reason }},
	{name: "finding", doc: "review: unexpected, ownerless, expected; diff: new, gone, changed", str: func(r *Row) *string { return &r.Finding }},
}

func (k kind) arrow() arrow.DataType {
	switch k {
	case kBinary:
		return arrow.BinaryTypes.Binary
	case kTime:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	}
	return arrow.BinaryTypes.String
}

// Schema returns the result schema, declared once here: ts is
// timestamp[us, UTC]; the address is both text (ip) and uint32 (ip_u32) so
// readers can filter ranges with push-down; mss, asn and the grab and
// review columns (the extras table above) are nullable.
func Schema() *arrow.Schema {
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	f := func(name string, t arrow.DataType, nullable bool, doc string) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable, Metadata: arrow.NewMetadata([]string{"doc"}, []string{doc})}
	}
	fields := []arrow.Field{
		f("ts", ts, false, "reply arrival time, UTC, microseconds"),
		f("ip", arrow.BinaryTypes.String, false, "target IPv4 address, dotted"),
		f("ip_u32", arrow.PrimitiveTypes.Uint32, false, "target IPv4 address as an unsigned integer"),
		f("port", arrow.PrimitiveTypes.Uint16, false, "target TCP port"),
		f("status", arrow.BinaryTypes.String, false, "open (SYN-ACK) or closed (RST); reach grab on a list: open (connected), closed (refused), filtered (no answer) or unknown (never tried, or failed on this host)"),
		f("ttl", arrow.PrimitiveTypes.Uint8, false, "IPv4 TTL of the reply"),
		f("window", arrow.PrimitiveTypes.Uint16, false, "TCP window of the reply"),
		f("mss", arrow.PrimitiveTypes.Uint16, true, "TCP MSS option of the reply in bytes; null when absent"),
		f("probe", arrow.PrimitiveTypes.Uint8, false, "probe copy answered, 0-based"),
		f("shard", arrow.PrimitiveTypes.Uint16, false, "shard that scanned the pair"),
		f("asn", arrow.PrimitiveTypes.Uint32, true, "origin autonomous system; null when unknown"),
	}
	for _, e := range extras {
		fields = append(fields, f(e.name, e.kind.arrow(), true, e.doc))
	}
	return arrow.NewSchema(fields, nil)
}

// Fields are the indexes of the columns an output keeps, in schema order;
// nil keeps every column.
type Fields []int

// ParseFields parses -f: column names, comma-separated ("" = every column).
// Columns are written in schema order whatever order they are named in.
func ParseFields(s string) (Fields, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(columns, n) {
			return nil, fmt.Errorf("field %q: no such column (reach --list-fields lists them)", n)
		}
		want[n] = true
	}
	var f Fields
	for i, c := range columns {
		if want[c] {
			f = append(f, i)
		}
	}
	return f, nil
}

// Has reports whether column i is kept.
func (f Fields) Has(i int) bool { return f == nil || slices.Contains(f, i) }

// pick returns the kept elements of all (one per column), reusing dst.
func pick[T any](f Fields, all []T, dst []T) []T {
	if f == nil {
		return all
	}
	dst = dst[:0]
	for _, i := range f {
		dst = append(dst, all[i])
	}
	return dst
}

// Field describes one column for --list-fields.
type Field struct {
	Name, Type, Doc string
	Nullable        bool
}

// List describes every column, in schema order.
func List() []Field {
	var out []Field
	for _, f := range Schema().Fields() {
		doc, _ := f.Metadata.GetValue("doc")
		out = append(out, Field{Name: f.Name, Type: f.Type.String(), Doc: doc, Nullable: f.Nullable})
	}
	return out
}

// Status is what a target's port answered. The zero value is unknown.
type Status uint8

// The statuses of a row.
const (
	StatusUnknown  Status = iota // never tried, or tried and failed on this host
	StatusOpen                   // SYN-ACK (scan) or a connection (grab of a list)
	StatusClosed                 // RST, or a refused connection
	StatusFiltered               // nothing answered a grab of a list
)

// String is the status as the outputs write it.
func (s Status) String() string {
	switch s {
	case StatusOpen:
		return "open"
	case StatusClosed:
		return "closed"
	case StatusFiltered:
		return "filtered"
	}
	return "unknown"
}

// ParseStatus reads a status column ("" is unknown).
func ParseStatus(s string) (Status, error) {
	switch s {
	case "open":
		return StatusOpen, nil
	case "closed":
		return StatusClosed, nil
	case "filtered":
		return StatusFiltered, nil
	case "unknown", "":
		return StatusUnknown, nil
	}
	return StatusUnknown, fmt.Errorf("status %q: want open, closed, filtered or unknown", s)
}
