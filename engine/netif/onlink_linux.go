package netif

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
)

// MaxOnLinkTargets bounds how many targets on the local subnet a scan may
// have: each needs its own MAC, resolved before the first probe.
const MaxOnLinkTargets = 65536

// OnLinkMACs resolves the MAC of every address in targets that lies on the
// interface's own subnet (such targets are reached directly, not through the
// gateway): from the neighbour table, then by one round of ARP requests
// answered within timeout. Addresses that stay unresolved are returned in
// missing; probing them would be pointless.
func OnLinkMACs(ctx context.Context, p *Path, targets []netip.Addr, timeout time.Duration) (macs map[netip.Addr]net.HardwareAddr, missing []netip.Addr, err error) {
	macs = make(map[netip.Addr]net.HardwareAddr)
	if len(targets) == 0 {
		return macs, nil, nil
	}
	if len(targets) > MaxOnLinkTargets {
		return nil, nil, fmt.Errorf("%d targets on the local subnet %s: at most %d (each needs ARP)", len(targets), p.OnLink, MaxOnLinkTargets)
	}
	neighs, err := netlink.NeighList(p.Iface.Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, fmt.Errorf("neighbours on %s: %w", p.Iface.Name, err)
	}
	known := make(map[netip.Addr]net.HardwareAddr, len(neighs))
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && n.State&usableNUD != 0 && len(n.HardwareAddr) == 6 {
			known[a.Unmap()] = n.HardwareAddr
		}
	}
	var ask []netip.Addr
	for _, t := range targets {
		if m, ok := known[t]; ok {
			macs[t] = m
		} else {
			ask = append(ask, t)
		}
	}
	if len(ask) == 0 {
		return macs, nil, nil
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	c, err := arp.Dial(p.Iface)
	if err != nil {
		return nil, nil, fmt.Errorf("arp on %s: %w", p.Iface.Name, err)
	}
	defer c.Close()
	want := make(map[netip.Addr]bool, len(ask))
	for _, a := range ask {
		want[a] = true
		if err := c.Request(a); err != nil {
			return nil, nil, fmt.Errorf("arp request for %s on %s: %w", a, p.Iface.Name, err)
		}
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	for len(macs) < len(targets) {
		pkt, _, err := c.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			continue // a frame that is not ARP
		}
		if pkt.Operation == arp.OperationReply && want[pkt.SenderIP] {
			macs[pkt.SenderIP] = pkt.SenderHardwareAddr
		}
	}
	for _, a := range ask {
		if _, ok := macs[a]; !ok {
			missing = append(missing, a)
		}
	}
	return macs, missing, nil
}
