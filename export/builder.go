package export

import (
	"net/netip"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// batchRows is how many rows one record batch (and one Parquet row group,
// at most) holds.
const batchRows = 64 * 1024

// recordBuilder accumulates rows into Arrow record batches.
type recordBuilder struct {
	b      *array.RecordBuilder
	n      int
	keep   Fields
	schema *arrow.Schema // of the batches flush returns: the columns kept
}

func newRecordBuilder(keep Fields) *recordBuilder {
	full := Schema()
	rb := &recordBuilder{b: array.NewRecordBuilder(memory.DefaultAllocator, full), keep: keep, schema: full}
	if keep != nil {
		rb.schema = arrow.NewSchema(pick(keep, full.Fields(), nil), nil)
	}
	return rb
}

func appendString(b array.Builder, s string) {
	sb := b.(*array.StringBuilder)
	if s == "" {
		sb.AppendNull()
	} else {
		sb.Append(s)
	}
}

func (rb *recordBuilder) add(r *Row) {
	f := rb.b.Fields()
	f[0].(*array.TimestampBuilder).Append(arrow.Timestamp(r.Time.UnixMicro()))
	f[1].(*array.StringBuilder).Append(addrString(r.Addr))
	f[2].(*array.Uint32Builder).Append(r.Addr)
	f[3].(*array.Uint16Builder).Append(r.Port)
	f[4].(*array.StringBuilder).Append(r.Status.String())
	f[5].(*array.Uint8Builder).Append(r.TTL)
	f[6].(*array.Uint16Builder).Append(r.Window)
	if r.MSS == 0 {
		f[7].AppendNull()
	} else {
		f[7].(*array.Uint16Builder).Append(r.MSS)
	}
	f[8].(*array.Uint8Builder).Append(r.Probe)
	f[9].(*array.Uint16Builder).Append(r.Shard)
	if r.HasASN {
		f[10].(*array.Uint32Builder).Append(r.ASN)
	} else {
		f[10].AppendNull()
	}
	for i, e := range extras {
		b := f[len(scanColumns)+i]
		switch e.kind {
		case kString:
			appendString(b, *e.str(r))
		case kBinary:
			if v := *e.bin(r); v == nil {
				b.AppendNull()
			} else {
				b.(*array.BinaryBuilder).Append(v)
			}
		case kTime:
			if v := *e.tm(r); v.IsZero() {
				b.AppendNull()
			} else {
				b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
			}
		case kBool:
			if !e.valid(r) {
				b.AppendNull()
			} else {
				b.(*array.BooleanBuilder).Append(*e.bl(r))
			}
		}
	}
	rb.n++
}

// flush returns the accumulated batch (nil when empty); the caller releases it.
func (rb *recordBuilder) flush() arrow.RecordBatch {
	if rb.n == 0 {
		return nil
	}
	rb.n = 0
	rec := rb.b.NewRecordBatch()
	if rb.keep == nil {
		return rec
	}
	defer rec.Release()
	return array.NewRecordBatch(rb.schema, pick(rb.keep, rec.Columns(), nil), rec.NumRows())
}

func (rb *recordBuilder) release() { rb.b.Release() }

func addrString(a uint32) string {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).String()
}
