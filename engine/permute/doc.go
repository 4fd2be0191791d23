// Package permute orders the index space [0, N) of a scan as a walk through
// a cyclic multiplicative group, the construction ZMap introduced.
//
// # Mathematics
//
// For a prime p the non-zero residues modulo p form the cyclic group
// (Z/pZ)* of order p−1. A primitive root g generates it: the sequence
// start·g^k mod p for k = 0, 1, …, p−2 visits every element of {1, …, p−1}
// exactly once, in an order that looks random and spreads consecutive
// probes across the address space. With p the smallest prime above N taken
// from a table of primes just above powers of two, the walk visits every
// element x in [1, N] once; elements above N are skipped, and x−1 is the
// emitted index. Since p < 2N+O(1), fewer than half of the steps are skipped.
//
// g is a primitive root exactly when g^((p−1)/q) ≠ 1 (mod p) for every prime
// factor q of p−1, so the table carries the factorisation of p−1. g and the
// start element are drawn from a ChaCha8 stream keyed by the scan seed, so a
// seed fixes the order and every host and resumed run agrees on it.
//
// # Shards and threads
//
// The cycle positions k = 0 … p−2 are dealt out round-robin to R = S·T runs
// (S shards, T sender threads per shard): run r = t·S + s walks the positions
// r, r+R, r+2R, … by multiplying with g^R at each step. The runs are
// disjoint and together cover every position once, and the positions of
// shard s (over all its threads) are exactly those ≡ s (mod S), whatever T
// is, so hosts may use different thread counts. A run's Position (positions
// done, next element) is its checkpoint; resuming from it yields exactly the
// rest of the run.
//
// # Arithmetic
//
// p can exceed 2^48 (2^32 addresses × 65535 ports), so x·g does not fit in 64
// bits. Each step is one Montgomery multiplication (Montgomery, "Modular
// multiplication without trial division", Math. Comp. 44, 1985) with
// R = 2^64: the multiplier is stored as g^R·2^64 mod p, so REDC(x · that)
// is x·g^R mod p in ordinary form, with three 64-bit multiplications and no
// division.
//
// Sources: Durumeric, Wustrow, Halderman, "ZMap: Fast Internet-wide Scanning
// and Its Security Applications", USENIX Security 2013; Adrian, Durumeric,
// Singh, Halderman, "Zippier ZMap: Internet-Wide Scanning at 10 Gbps",
// USENIX WOOT 2014.
package permute
