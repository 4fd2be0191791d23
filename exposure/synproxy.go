package exposure

import (
	"github.com/reachscan/reach/export"
)

// An on-path box that answers every SYN with a cookie-valid SYN-ACK — a SYN
// proxy, a tarpit such as LaBrea, a forging middlebox, a transparent proxy
// redirecting every port — makes every scanned port of an address look
// open. LZR (Izhikevich et al., USENIX Security 2021) describes such hosts
// completing the handshake on ports where no service runs. Their SYN-ACKs
// come from one TCP stack, so they share one signature (TTL, window, MSS),
// while a real host exposes few ports. The rule, and its thresholds, are
// reach's own:
//
//	an address is a SYN proxy when at least ProxyMinPorts of its ports
//	answered SYN-ACK and at least ProxyShare of those SYN-ACKs carry the
//	same (TTL, window, MSS).
//
// Its rows stay in every output (status open, the reply's TTL, window and
// MSS as they came); the review marks them (finding syn-proxy, severity
// info) and lists the address once instead of each port.
const (
	ProxyMinPorts = 64
	ProxyShare    = 0.9
)

// Signature is what identifies the TCP stack that sent a SYN-ACK.
type Signature struct {
	TTL    uint8
	Window uint16
	MSS    uint16 // 0: no MSS option
}

// Proxy is an address judged a SYN proxy: its open ports and the signature
// most of their SYN-ACKs share.
type Proxy struct {
	Ports int
	Signature
}

// ProxyDetector applies the rule to SYN-ACKs as they come, one address at a
// time. The zero value is ready.
type ProxyDetector struct {
	hosts map[uint32]*hostSigs
}

// hostSigs counts one address's SYN-ACKs: the first signature inline (most
// addresses answer on one or two ports with one stack), others in a map
// made only when a second signature appears.
type hostSigs struct {
	ports  int
	first  Signature
	firstN int
	others map[Signature]int
}

// Add counts one open pair of addr and its SYN-ACK's signature.
func (d *ProxyDetector) Add(addr uint32, s Signature) {
	if d.hosts == nil {
		d.hosts = map[uint32]*hostSigs{}
	}
	h := d.hosts[addr]
	if h == nil {
		h = &hostSigs{first: s}
		d.hosts[addr] = h
	}
	h.ports++
	if s == h.first {
		h.firstN++
		return
	}
	if h.others == nil {
		h.others = map[Signature]int{}
	}
	h.others[s]++
}

// Proxies are the addresses the rule judges SYN proxies.
func (d *ProxyDetector) Proxies() map[uint32]Proxy {
	out := map[uint32]Proxy{}
	for a, h := range d.hosts {
		if h.ports < ProxyMinPorts {
			continue
		}
		best, n := h.first, h.firstN
		for s, c := range h.others {
			if c > n {
				best, n = s, c
			}
		}
		if float64(n) >= ProxyShare*float64(h.ports) {
			out[a] = Proxy{Ports: h.ports, Signature: best}
		}
	}
	return out
}

// DetectProxies applies the rule to the open rows of a scan (one per pair).
func DetectProxies(rows []export.Row) map[uint32]Proxy {
	var d ProxyDetector
	for _, r := range rows {
		if r.Status == export.StatusOpen {
			d.Add(r.Addr, Signature{TTL: r.TTL, Window: r.Window, MSS: r.MSS})
		}
	}
	return d.Proxies()
}
