// Package responder is an XDP program that answers every SYN to the
// simulated internet (198.19.0.0/16) in place with the SYN-ACK or RST its
// ground truth calls for, so benchmarks measure the scanner, not the far
// side's kernel. Its ground truth (Open, Silent) has open, closed and
// silent pairs.
package responder

import _ "embed"

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel responder responder.c

// Object is the compiled program (ELF), for `ip link set dev X xdp obj`.
//
//go:embed responder_bpfel.o
var Object []byte

// Sections of the programs in Object: Answer answers every SYN to
// 198.19.0.0/16; AnswerButServers leaves 198.19.1.0/24 (the real servers)
// to the kernel; Sink drops every frame (a send-rate benchmark's far side).
const (
	Answer           = "xdp"
	AnswerButServers = "xdp/servers"
	Sink             = "xdp/sink"
)

// Silent reports whether the responder never answers addr (host order):
// a host that drops every probe.
func Silent(addr uint32) bool { return addr%11 == 0 }

// Open reports whether the responder answers port on address (host order)
// with a SYN-ACK; every other pair of an address that is not Silent gets an
// RST.
func Open(addr uint32, port uint16) bool {
	if Silent(addr) {
		return false
	}
	switch port {
	case 22, 80, 443, 3306, 5432, 6379, 8080:
		return addr%7 != 0
	}
	return false
}
