// csum.h — the Internet checksum helpers shared by reach's XDP programs
// (bpf/xdp.c, bench/responder/responder.c).
#pragma once

#include <linux/types.h>

// csum_fold folds a 64-bit sum of 16-bit words into the 16-bit ones'
// complement checksum (RFC 1071), complemented and ready to store. Three
// folds suffice for sums of fewer than 2^32 words.
static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}
