package permute

// groupPrime is a prime p just above a power of two and the distinct prime
// factors of p−1, used to test primitive roots.
type groupPrime struct {
	p       uint64
	factors []uint64
}

// primes holds, for k = 1 … 48, the smallest prime above 2^k and the
// distinct prime factors of p−1. 2^48 exceeds the largest index space
// (2^32 addresses × 65535 ports). Values computed with GNU coreutils
// factor(1); TestPrimeTable re-derives them.
var primes = [...]groupPrime{
	{3, []uint64{2}},
	{5, []uint64{2}},
	{11, []uint64{2, 5}},
	{17, []uint64{2}},
	{37, []uint64{2, 3}},
	{67, []uint64{2, 3, 11}},
	{131, []uint64{2, 5, 13}},
	{257, []uint64{2}},
	{521, []uint64{2, 5, 13}},
	{1031, []uint64{2, 5, 103}},
	{2053, []uint64{2, 3, 19}},
	{4099, []uint64{2, 3, 683}},
	{8209, []uint64{2, 3, 19}},
	{16411, []uint64{2, 3, 5, 547}},
	{32771, []uint64{2, 5, 29, 113}},
	{65537, []uint64{2}},
	{131101, []uint64{2, 3, 5, 19, 23}},
	{262147, []uint64{2, 3, 43691}},
	{524309, []uint64{2, 23, 41, 139}},
	{1048583, []uint64{2, 29, 101, 179}},
	{2097169, []uint64{2, 3, 43691}},
	{4194319, []uint64{2, 3, 699053}},
	{8388617, []uint64{2, 17, 61681}},
	{16777259, []uint64{2, 23, 103, 3541}},
	{33554467, []uint64{2, 3, 11, 56489}},
	{67108879, []uint64{2, 3, 1242757}},
	{134217757, []uint64{2, 3, 1242757}},
	{268435459, []uint64{2, 3, 19, 87211}},
	{536870923, []uint64{2, 3, 7, 23, 555767}},
	{1073741827, []uint64{2, 3, 59, 3033169}},
	{2147483659, []uint64{2, 3, 149, 2402107}},
	{4294967311, []uint64{2, 3, 5, 131, 364289}},
	{8589934609, []uint64{2, 3, 59, 3033169}},
	{17179869209, []uint64{2, 83, 1277, 20261}},
	{34359738421, []uint64{2, 3, 5, 7, 81808901}},
	{68719476767, []uint64{2, 163, 883, 238727}},
	{137438953481, []uint64{2, 5, 137, 953, 26317}},
	{274877906951, []uint64{2, 5, 35573, 154543}},
	{549755813911, []uint64{2, 3, 5, 383, 47846459}},
	{1099511627791, []uint64{2, 3, 5, 36650387593}},
	{2199023255579, []uint64{2, 277, 3969356057}},
	{4398046511119, []uint64{2, 3, 13, 71, 227, 3498493}},
	{8796093022237, []uint64{2, 3, 13, 71, 227, 3498493}},
	{17592186044423, []uint64{2, 11, 53, 97, 155542661}},
	{35184372088891, []uint64{2, 3, 5, 19, 120739, 511243}},
	{70368744177679, []uint64{2, 3, 1947973, 6020681}},
	{140737488355333, []uint64{2, 3, 11, 19, 331, 18837001}},
	{281474976710677, []uint64{2, 3, 7, 1361, 2462081249}},
}

// MaxN is the largest index space the table supports.
const MaxN = 281474976710677 - 1

// primeAbove returns the table entry with the smallest p > n.
func primeAbove(n uint64) (groupPrime, bool) {
	for _, gp := range primes {
		if gp.p > n {
			return gp, true
		}
	}
	return groupPrime{}, false
}
