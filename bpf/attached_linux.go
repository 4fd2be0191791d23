package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// ProgramName is the matcher's name as the kernel reports it
// (bpf_prog_info.name: the function name in xdp.c, at most 15 bytes). It
// tells reach's matcher apart from other XDP programs on an interface.
const ProgramName = "reach_xdp"

// XDPProgram is the XDP program attached to an interface.
type XDPProgram struct {
	ID   ebpf.ProgramID // 0 when the kernel reports several (offload and another mode)
	Name string         // the kernel's program name, "" when unknown
	Mode string         // "driver", "generic", "offload" or "multi"
}

// IsMatcher reports whether p is reach's matcher, attached by a reach scan.
func (p XDPProgram) IsMatcher() bool { return p.Name == ProgramName }

func (p XDPProgram) String() string {
	name := p.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s (program id %d, %s mode)", name, p.ID, p.Mode)
}

// AttachedXDP returns the XDP program attached to the interface with index
// ifindex in the caller's network namespace (rtnetlink IFLA_XDP, then
// bpf_prog_info for its name); ok is false when none is.
func AttachedXDP(ifindex int) (p XDPProgram, ok bool, err error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return p, false, fmt.Errorf("xdp program of interface %d: %w", ifindex, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return p, false, nil
	}
	p = XDPProgram{ID: ebpf.ProgramID(x.ProgId), Mode: attachMode(x.AttachMode)}
	if p.ID == 0 {
		return p, true, nil
	}
	prog, err := ebpf.NewProgramFromID(p.ID)
	if err != nil {
		return p, true, fmt.Errorf("xdp program %d of %s: %w", p.ID, l.Attrs().Name, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return p, true, fmt.Errorf("xdp program %d of %s: info: %w", p.ID, l.Attrs().Name, err)
	}
	p.Name = info.Name
	return p, true, nil
}

func attachMode(m uint32) string {
	switch m {
	case nl.XDP_ATTACHED_DRV:
		return "driver"
	case nl.XDP_ATTACHED_SKB:
		return "generic"
	case nl.XDP_ATTACHED_HW:
		return "offload"
	}
	return "multi"
}
