// Package results owns the way from a reply or a grab to the outputs: a
// hit or a grab becomes a row in one place (FromHit, ApplyGrab), rows flow
// to sinks (files committed at every checkpoint, streams written in place,
// text lines on stdout) under one lock, and the pipeline says what it has
// committed so a checkpoint can record it and a resumed run can skip what is
// already on disk.
package results

import (
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"

	"github.com/reachscan/reach/engine/recv"
	"github.com/reachscan/reach/engine/target"
	"github.com/reachscan/reach/export"
	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/internal/safe"
)

// FromHit is the row of a receiver's hit, scanned by shard.
func FromHit(h *recv.Hit, shard uint16) export.Row {
	return export.Row{Time: h.Time, Addr: h.Addr, Port: h.Port, Status: hitStatus(h.Status), TTL: h.TTL,
		Window: h.Window, MSS: h.MSS, Probe: h.Probe, Shard: shard}
}

// ApplyGrab copies a grab result into the grab columns of r. A target the
// pool never tried (no Status) keeps every grab column null.
func ApplyGrab(r *export.Row, res fingerprint.Result) {
	if res.Status == "" {
		return
	}
	r.Service, r.Product, r.Version, r.Banner = res.Service, res.Product, res.Version, res.Banner
	r.GrabStatus, r.GrabError, r.Auth = string(res.Status), res.Error, string(res.Auth)
	r.Details = ""
	if len(res.Details) > 0 {
		b, _ := json.Marshal(res.Details) // map keys sorted: stable text
		r.Details = string(b)
	}
	r.TLS = export.TLSRow{}
	if res.TLS != nil {
		r.TLS.Version, r.TLS.Cipher, r.TLS.ALPN = res.TLS.Version, res.TLS.Cipher, res.TLS.ALPN
		if l := res.TLS.Leaf(); l != nil {
			r.TLS.Subject, r.TLS.Issuer, r.TLS.SANs = l.Subject, l.Issuer, strings.Join(l.SANs, ",")
			r.TLS.NotBefore, r.TLS.NotAfter, r.TLS.SHA256 = l.NotBefore, l.NotAfter, l.SHA256
			r.TLS.SelfSigned, r.TLS.Expired = l.SelfSigned, l.Expired
			b, _ := json.Marshal(res.TLS.Chain)
			r.TLS.Chain = string(b)
		}
	}
}

// hitStatus is the row status of a receiver's hit.
func hitStatus(s recv.Status) export.Status {
	switch s {
	case recv.Open:
		return export.StatusOpen
	case recv.Closed:
		return export.StatusClosed
	}
	return export.StatusUnknown
}

// ListStatus is the status of a row that came from a list of ip,port lines
// (no scan said it): open when the grab connected, closed when refused,
// filtered when nothing answered, and unknown ("") when the grab was never
// tried or failed here (a local error says nothing about the target).
func ListStatus(res fingerprint.Result) export.Status {
	switch {
	case res.Status == "" || res.Status == fingerprint.StatusLocalError:
		return export.StatusUnknown
	case res.Connected:
		return export.StatusOpen
	case res.Status == fingerprint.StatusRefused:
		return export.StatusClosed
	}
	return export.StatusFiltered
}

// PairLine is the text line of a scan row: ip,port, or ip,port,status when
// closed pairs are reported too.
func PairLine(r *export.Row, withStatus bool) string {
	s := target.Addr(r.Addr).String() + "," + strconv.Itoa(int(r.Port))
	if withStatus {
		s += "," + r.Status.String()
	}
	return s + "\n"
}

// GrabLine is the text line of a grabbed row:
// ip,port,service,product,version,status, RFC 4180 quoted, with control
// characters from the server escaped.
func GrabLine(r *export.Row) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{target.Addr(r.Addr).String(), strconv.Itoa(int(r.Port)), safe.Terminal(r.Service), safe.Terminal(r.Product), safe.Terminal(r.Version), r.GrabStatus})
	w.Flush()
	return b.String()
}

// key is a pair as one integer: address in the high 32 bits.
func key(addr uint32, port uint16) uint64 { return uint64(addr)<<16 | uint64(port) }

// AddrPort is the row's target.
func AddrPort(r *export.Row) netip.AddrPort {
	return netip.AddrPortFrom(target.Addr(r.Addr), r.Port)
}
