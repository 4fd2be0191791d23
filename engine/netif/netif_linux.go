// Package netif finds how probes leave the scan host: the interface, the
// source address and MAC, and the next hop's MAC (the gateway's, or the
// target's own for targets on the local subnet), through netlink route and
// neighbour look-ups, resolving by ARP when the neighbour entry is missing or
// stale.
package netif

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
)

// Config overrides what the routing table would choose.
type Config struct {
	Iface      string           // -i: send on this interface
	SourceIPs  []netip.Addr     // -S: source addresses (default: the route's preferred source)
	GatewayMAC net.HardwareAddr // -G: next-hop MAC for every routed target
	ARPTimeout time.Duration    // per ARP resolution; 0 means 1 s
	// NoARP forbids sending ARP requests (a dry run sends nothing): a next
	// hop missing from the neighbour table is left unresolved.
	NoARP bool
}

// Path is how probes to one destination leave the host.
type Path struct {
	Iface     *net.Interface
	SourceIPs []netip.Addr
	SrcMAC    net.HardwareAddr
	Gateway   netip.Addr       // invalid when the destination is on-link
	NextHop   net.HardwareAddr // gateway's MAC; nil for an on-link destination (see OnLinkMACs)
	OnLink    netip.Prefix     // the interface's subnet holding the source address
}

// Lookup asks the kernel how it would route to dst and resolves the
// gateway's MAC (an on-link dst has no gateway: NextHop stays nil). It must
// run in the network namespace the scan sends from.
func Lookup(ctx context.Context, dst netip.Addr, cfg Config) (*Path, error) {
	var opts netlink.RouteGetOptions
	if cfg.Iface != "" {
		opts.Oif = cfg.Iface
	}
	routes, err := netlink.RouteGetWithOptions(dst.AsSlice(), &opts)
	if err != nil {
		return nil, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("route to %s: no route", dst)
	}
	rt := routes[0]
	link, err := netlink.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("route to %s: interface %d: %w", dst, rt.LinkIndex, err)
	}
	ifi, err := net.InterfaceByIndex(rt.LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link.Attrs().Name, err)
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("route to %s leaves through loopback %s: not a scan target", dst, ifi.Name)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", ifi.Name)
	}
	p := &Path{Iface: ifi, SrcMAC: ifi.HardwareAddr, SourceIPs: cfg.SourceIPs}
	if len(p.SourceIPs) == 0 {
		src, ok := netip.AddrFromSlice(rt.Src)
		if !ok {
			return nil, fmt.Errorf("route to %s has no preferred source address; give -S", dst)
		}
		p.SourceIPs = []netip.Addr{src.Unmap()}
	}
	if p.OnLink, err = onLinkPrefix(link, p.SourceIPs[0]); err != nil {
		return nil, err
	}
	gw, ok := netip.AddrFromSlice(rt.Gw)
	if !ok || rt.Gw == nil {
		return p, nil // on-link: every such target needs its own MAC
	}
	p.Gateway = gw.Unmap()
	if cfg.GatewayMAC != nil {
		p.NextHop = cfg.GatewayMAC
		return p, nil
	}
	if cfg.NoARP {
		p.NextHop, _ = neighbourTable(ifi, p.Gateway)
		return p, nil
	}
	if p.NextHop, err = Neighbour(ctx, ifi, p.Gateway, cfg.ARPTimeout); err != nil {
		return nil, err
	}
	return p, nil
}

// onLinkPrefix returns the subnet of the interface address src.
func onLinkPrefix(link netlink.Link, src netip.Addr) (netip.Prefix, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		ones, _ := a.Mask.Size()
		pfx := netip.PrefixFrom(ip.Unmap(), ones).Masked()
		if pfx.Contains(src) {
			return pfx, nil
		}
	}
	return netip.Prefix{}, nil // a spoofed -S source: no on-link subnet
}

// usable neighbour states: a stale, failed or incomplete entry is resolved
// again by ARP.
const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_PERMANENT | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_NOARP

// Neighbour returns the MAC of ip on ifi: from the kernel's neighbour table
// when the entry is usable, otherwise by ARP.
func Neighbour(ctx context.Context, ifi *net.Interface, ip netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	mac, err := neighbourTable(ifi, ip)
	if err != nil || mac != nil {
		return mac, err
	}
	return resolveARP(ctx, ifi, ip, timeout)
}

// neighbourTable returns ip's MAC from a usable neighbour entry, or nil.
func neighbourTable(ifi *net.Interface, ip netip.Addr) (net.HardwareAddr, error) {
	neighs, err := netlink.NeighList(ifi.Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("neighbours on %s: %w", ifi.Name, err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.State&usableNUD != 0 && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, nil
		}
	}
	return nil, nil
}

func resolveARP(ctx context.Context, ifi *net.Interface, ip netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("arp on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("arp on %s: %w", ifi.Name, err)
	}
	mac, err := c.Resolve(ip)
	if err != nil {
		return nil, fmt.Errorf("resolve %s by ARP on %s (give -G/--gateway-mac to skip): %w", ip, ifi.Name, err)
	}
	return mac, nil
}

// LocalPortRange reads the kernel's ephemeral port range
// (net.ipv4.ip_local_port_range) of the current network namespace.
func LocalPortRange() (first, last uint16, err error) {
	f, err := os.Open("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, fmt.Errorf("read ip_local_port_range: %w", err)
	}
	defer f.Close()
	var a, b int
	if _, err := fmt.Fscan(bufio.NewReader(f), &a, &b); err != nil {
		return 0, 0, fmt.Errorf("parse ip_local_port_range: %w", err)
	}
	return uint16(a), uint16(b), nil
}

// ErrPortOverlap is returned (wrapped) when the scan's source ports collide
// with the kernel's ephemeral ports on an address the kernel owns.
var ErrPortOverlap = errors.New("source-port range overlaps the kernel's ephemeral ports")

// CheckPortRange refuses a scan source-port window [first, last] that
// overlaps the kernel's ephemeral range when a source address is one the
// kernel owns: the kernel's own connections (banner grabs) would take ports
// whose replies the scan also claims.
func CheckPortRange(first, last uint16, sources []netip.Addr) error {
	owned, err := kernelOwns(sources)
	if err != nil {
		return err
	}
	if !owned.IsValid() {
		return nil
	}
	lo, hi, err := LocalPortRange()
	if err != nil {
		return err
	}
	if first <= hi && lo <= last {
		return fmt.Errorf("%w: --source-port %d-%d meets net.ipv4.ip_local_port_range %d-%d on %s, so the kernel's own connections (banner grabs) would use scan ports; give --source-port outside %d-%d, or move the kernel's range with sysctl -w net.ipv4.ip_local_port_range=\"LOW HIGH\"",
			ErrPortOverlap, first, last, lo, hi, owned, lo, hi)
	}
	return nil
}

// kernelOwns returns the first of sources assigned to a local interface.
func kernelOwns(sources []netip.Addr) (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list local addresses: %w", err)
	}
	for _, s := range sources {
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == s {
				return s, nil
			}
		}
	}
	return netip.Addr{}, nil
}

// ParseSourceIPs parses -S: one IPv4 address or an inclusive range a-b (at
// most 65536 addresses).
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := netip.ParseAddr(strings.TrimSpace(lo))
	if err != nil || !a.Is4() {
		return nil, fmt.Errorf("source address %q: want an IPv4 address or range a-b", s)
	}
	if !isRange {
		return []netip.Addr{a}, nil
	}
	b, err := netip.ParseAddr(strings.TrimSpace(hi))
	if err != nil || !b.Is4() || b.Less(a) {
		return nil, fmt.Errorf("source range %q: want a-b with a ≤ b, both IPv4", s)
	}
	var out []netip.Addr
	for x := a; ; x = x.Next() {
		out = append(out, x)
		if x == b {
			break
		}
		if len(out) == 65536 {
			return nil, fmt.Errorf("source range %q: more than 65536 addresses", s)
		}
	}
	return out, nil
}
