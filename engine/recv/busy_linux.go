package recv

import (
	"errors"
	"fmt"
	"net"

	"github.com/reachscan/reach/bpf"
)

// ErrInterfaceBusy is returned (wrapped) when another reach scan's XDP
// matcher is attached to the interface. That matcher checks every reply
// against its own scan's cookie and drops the rest as bad cookies, so a
// second scan there would receive nothing with either receiver: one
// interface, one scan.
var ErrInterfaceBusy = errors.New("interface busy: another reach scan's XDP matcher is attached")

// CheckInterface refuses ifi when another reach scan's matcher is attached
// to it (an error wrapping ErrInterfaceBusy), and returns any other XDP
// program attached there, nil when there is none: such a program may drop
// or redirect replies before an AF_PACKET receiver sees them, and keeps the
// XDP receiver from attaching, so the caller should say so.
func CheckInterface(ifi *net.Interface) (*bpf.XDPProgram, error) {
	p, ok, err := bpf.AttachedXDP(ifi.Index)
	switch {
	case !ok && err != nil:
		return nil, fmt.Errorf("check %s for xdp programs: %w", ifi.Name, err)
	case !ok:
		return nil, nil
	case p.IsMatcher():
		return nil, fmt.Errorf("%s: %w: %s; a second scan there would receive no replies (that matcher drops them as bad cookies): wait for the other scan to end or scan from another interface",
			ifi.Name, ErrInterfaceBusy, p)
	}
	// another program, or one whose name could not be read (err): not
	// reach's as far as can be told
	return &p, nil
}
