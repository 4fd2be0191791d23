// Package target parses what a scan may probe — addresses, CIDRs, ranges, AS
// numbers, target files, allow- and blocklists, port lists — and builds the
// resulting address Set, whose dense index maps [0, Len) onto the allowed
// addresses in ascending order. Space pairs a Set with a port list so that a
// permutation index in [0, Len·ports) names one (address, port) probe target.
//
// Nothing here sends a packet.
package target
