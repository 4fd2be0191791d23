package testnet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// TCPCounter reads one Tcp counter of namespace ns from /proc/net/snmp
// (RFC 1213 names: InSegs, OutSegs, OutRsts, …).
func (n *Network) TCPCounter(ctx context.Context, ns, field string) (uint64, error) {
	out, err := n.Command(ctx, ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/snmp of %s: %w", ns, err)
	}
	var names []string
	for l := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == field && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Tcp %s in /proc/net/snmp of %s", field, ns)
}
