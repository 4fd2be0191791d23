// Package export declares reach's result schema once and writes results as
// Parquet, Arrow IPC, CSV and NDJSON, and reads them back.
package export

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Row is one result: a (target, port) that answered, with what was learnt.
// The grab and exposure fields are filled by later stages; empty means null.
type Row struct {
	Time   time.Time // when the reply arrived
	Addr   uint32    // target address, host order
	Port   uint16    // target port
	Status string    // "open" (SYN-ACK) or "closed" (RST)
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

// Column names, in schema order.
var columns = []string{"ts", "ip", "ip_u32", "port", "status", "ttl", "window", "mss", "probe", "shard", "asn",
	"service", "product", "version", "banner", "exposure_class", "severity", "owner"}

// Schema returns the result schema, declared once here: ts is
// timestamp[us, UTC]; the address is both text (ip) and uint32 (ip_u32) so
// readers can filter ranges with push-down; mss, asn and the grab and
// exposure columns are nullable.
func Schema() *arrow.Schema {
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	f := func(name string, t arrow.DataType, nullable bool, doc string) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable, Metadata: arrow.NewMetadata([]string{"doc"}, []string{doc})}
	}
	return arrow.NewSchema([]arrow.Field{
		f("ts", ts, false, "reply arrival time, UTC, microseconds"),
		f("ip", arrow.BinaryTypes.String, false, "target IPv4 address, dotted"),
		f("ip_u32", arrow.PrimitiveTypes.Uint32, false, "target IPv4 address as an unsigned integer"),
		f("port", arrow.PrimitiveTypes.Uint16, false, "target TCP port"),
		f("status", arrow.BinaryTypes.String, false, "open (SYN-ACK) or closed (RST)"),
		f("ttl", arrow.PrimitiveTypes.Uint8, false, "IPv4 TTL of the reply"),
		f("window", arrow.PrimitiveTypes.Uint16, false, "TCP window of the reply"),
		f("mss", arrow.PrimitiveTypes.Uint16, true, "TCP MSS option of the reply in bytes; null when absent"),
		f("probe", arrow.PrimitiveTypes.Uint8, false, "probe copy answered, 0-based"),
		f("shard", arrow.PrimitiveTypes.Uint16, false, "shard that scanned the pair"),
		f("asn", arrow.PrimitiveTypes.Uint32, true, "origin autonomous system; null when unknown"),
		f("service", arrow.BinaryTypes.String, true, "identified service"),
		f("product", arrow.BinaryTypes.String, true, "identified product"),
		f("version", arrow.BinaryTypes.String, true, "identified version"),
		f("banner", arrow.BinaryTypes.Binary, true, "first bytes the service sent"),
		f("exposure_class", arrow.BinaryTypes.String, true, "exposure class"),
		f("severity", arrow.BinaryTypes.String, true, "exposure severity"),
		f("owner", arrow.BinaryTypes.String, true, "declared owner"),
	}, nil)
}
