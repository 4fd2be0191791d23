package recv

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// xdpTXDelivers reports whether frames sent back with XDP_TX on ifi leave
// it, and why not. Drivers flush XDP_TX at the end of their poll, and count
// what they refuse; a veth hands the frame to its peer, and when the peer
// runs no XDP program the kernel either refuses it (peer without NAPI:
// counted as rx_queue_N_xdp_tx_errors) or leaves it in the peer's ring
// without waking the peer (peer with GRO: uncounted; it waits for other
// traffic toward the peer, so the RSTs answering a scan's last replies
// never leave). A veth whose peer cannot be looked up counts as one whose
// peer runs none.
func xdpTXDelivers(ifi *net.Interface) (bool, string) {
	l, err := netlink.LinkByIndex(ifi.Index)
	if err != nil {
		return false, fmt.Sprintf("look up %s: %v", ifi.Name, err)
	}
	if l.Type() != "veth" {
		return true, ""
	}
	a := l.Attrs()
	var peer netlink.Link
	if a.NetNsID < 0 {
		peer, err = netlink.LinkByIndex(a.ParentIndex)
	} else {
		peer, err = linkInNetNS(a.ParentIndex, a.NetNsID)
	}
	if err != nil {
		return false, fmt.Sprintf("%s is a veth whose peer (index %d) cannot be looked up: %v", ifi.Name, a.ParentIndex, err)
	}
	if x := peer.Attrs().Xdp; x != nil && x.Attached {
		return true, ""
	}
	return false, fmt.Sprintf("%s is a veth whose peer %s runs no XDP program: XDP_TX frames are refused there, or wait in its queue until other traffic arrives", ifi.Name, peer.Attrs().Name)
}

// linkInNetNS looks up the link with index in the network namespace that
// the caller's namespace knows as nsid (RTM_GETLINK with
// IFLA_TARGET_NETNSID, Linux 4.20+).
func linkInNetNS(index, nsid int) (netlink.Link, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("link %d in namespace %d: %w", index, nsid, err)
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("link %d in namespace %d: %d answers", index, nsid, len(msgs))
	}
	return netlink.LinkDeserialize(nil, msgs[0])
}
