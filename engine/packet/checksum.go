package packet

import "encoding/binary"

// Checksum is the Internet checksum (RFC 1071) of b, folded and
// complemented, with initial partial sum init. It is the test oracle for the
// incremental updates and is used once per template.
func Checksum(b []byte, init uint32) uint16 {
	return ^fold(sum(b, init))
}

// sum adds b as big-endian 16-bit words to s without folding.
func sum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold reduces a 32-bit partial sum to 16 bits with end-around carry.
func fold(s uint32) uint16 {
	s = s>>16 + s&0xffff
	s += s >> 16
	return uint16(s)
}

// PseudoSum is the partial sum of the TCP pseudo-header (RFC 9293 §3.1):
// source and destination address, protocol and TCP length.
func PseudoSum(src, dst uint32, tcpLen int) uint32 {
	return src>>16 + src&0xffff + dst>>16 + dst&0xffff + ProtoTCP + uint32(tcpLen)
}
