//go:build ignore

// xdp.c — reach's reply matcher.
//
// Runs on the scan interface. Every frame that is not TCP/IPv4 addressed to a
// scan source address and source port passes untouched (the host's own
// traffic, SSH to the appliance, banner-grab connections). For scan traffic it
// recomputes the SipHash-2-4 cookie exactly as engine/packet does in Go:
//
//   h0  = SipHash(key, our ip ‖ target ip ‖ 0 ‖ target port)
//   the reply's destination port must be window_first + (h0>>32 + k) mod
//   window_count for some copy k < probes;
//   seq = low 32 bits of SipHash(key, our ip ‖ target ip ‖ our port ‖ target port)
//
// A SYN-ACK must acknowledge seq+1, an RST must carry ack seq or seq+1. A
// valid reply becomes a compact event in a ring buffer; a valid SYN-ACK is
// rewritten in place into the RST the target needs to free its half-open
// state and sent back with XDP_TX (send_reset 1), so the host's kernel never
// sees it and never answers. Where XDP_TX cannot deliver (a veth whose peer
// runs no XDP program: the kernel refuses the frame, or leaves it in the
// peer's queue until other traffic wakes the peer), send_reset 2 passes the
// valid SYN-ACK to the host's kernel instead, which answers it with an RST
// (no socket owns a scan port); send_reset 0 drops it unanswered.
// Everything else addressed to the scan is counted and dropped.
//
// A reply is judged by one rule, the same as engine/packet.DecodeReply's
// (and so the AF_PACKET receiver's), tested on the same frames through both
// (engine/recv TestReceiversAgree): 20 ≤ IHL·4 ≤ total length ≤ the frame
// after Ethernet; IPv4 options well-formed (EOL ends them, NOP is one byte,
// any other option is at least 3 bytes and ends inside the header, as the
// kernel's ip_options_compile and gopacket require); the TCP header (data
// offset ≥ 5 words) inside the total length; TCP options well-formed (EOL
// ends them, NOP is one byte, any other option is at least 2 bytes inside
// the header, and MSS, window scale, SACK-permitted and timestamps have
// their RFC 9293 / RFC 7323 lengths). A scan reply that breaks it is counted
// as malformed and passed, never reported.
//
// Settings are volatile const globals set from Go before load.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "csum.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

volatile const __u64 key0 = 0, key1 = 0;    // SipHash key (little-endian words)
volatile const __u32 src_first = 0;         // scan source addresses, host order
volatile const __u32 src_last = 0;
volatile const __u32 window_first = 0;      // scan source ports
volatile const __u32 window_count = 1;
volatile const __u32 probes = 1;
volatile const __u32 send_reset = 1;       // 0 none, 1 XDP_TX, 2 the kernel

// Event is what user space receives per valid reply (32 bytes).
struct event {
	__u64 ts;      // bpf_ktime_get_ns()
	__u32 saddr;   // target address, host order
	__u32 ack;     // the reply's acknowledgment number
	__u16 sport;   // target port
	__u16 dport;   // our source port
	__u16 window;
	__u16 mss;     // 0 when absent
	__u8 flags;    // TCP flags
	__u8 ttl;
	__u8 pad[2];
	__u32 daddr;   // our source address the reply went to, host order
};
const struct event *unused_event __attribute__((unused));

// Counter indexes of the counters map; bpf2go generates them for Go.
enum counter {
	C_PASSED,
	C_SYNACK,
	C_RST,
	C_BAD_COOKIE,
	C_MALFORMED,
	C_RINGBUF_FULL,
	C_TX,
	C_RESET_FAILED,
	C_MAX,
};
const enum counter *unused_counter __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                       \
	do {                                                           \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                 \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                 \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

// siphash12 is SipHash-2-4 of the 12-byte message a ‖ b ‖ c ‖ d, all
// big-endian on the wire (Aumasson and Bernstein, 2012).
static __always_inline __u64 siphash12(__u32 a, __u32 b, __u16 c, __u16 d)
{
	__u64 v0 = key0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = key1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = key0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = key1 ^ 0x7465646279746573ULL;
	// message bytes: a (BE) | b (BE) | c (BE) | d (BE); SipHash reads
	// little-endian 64-bit words
	__u64 m0 = (__u64)bpf_htonl(a) | ((__u64)bpf_htonl(b) << 32);
	__u64 m1 = (__u64)bpf_htons(c) | ((__u64)bpf_htons(d) << 16) | (12ULL << 56);
	v3 ^= m0; SIPROUND; SIPROUND; v0 ^= m0;
	v3 ^= m1; SIPROUND; SIPROUND; v0 ^= m1;
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

// sum16 adds n (even, constant) bytes at p as big-endian words.
static __always_inline __u64 sum16(const __u8 *p, int n)
{
	__u64 s = 0;
#pragma unroll
	for (int i = 0; i < n; i += 2)
		s += ((__u32)p[i] << 8) | p[i + 1];
	return s;
}

// MAX_OPTS is the most option bytes an IPv4 or TCP header holds.
#define MAX_OPTS 40

// opts_walk is the state of one walk over IPv4 or TCP options, copied out
// of the frame so each step reads the stack, not the packet.
struct opts_walk {
	__u8 b[64];   // the option bytes (len of them)
	__u32 off;    // where the next option starts
	__u32 len;    // option bytes, at most MAX_OPTS
	__u32 tcp;    // 1: TCP options, 0: IPv4 options
	int mss;      // the MSS option's value, 0 when absent
	int bad;      // set when the options break the rule
};

// opts_step judges the option at w->off and returns 1 to stop (end, EOL
// or a fault), 0 to go on. Kept out of line, so the verifier checks it once
// per call rather than once per path through the walk.
static __noinline long opts_step(struct opts_walk *w)
{
	__u32 off = w->off;
	if (off >= w->len)
		return 1;
	__u8 kind = w->b[off & 63];
	if (kind == 0)
		return 1; // EOL: the rest is padding
	if (kind == 1) {
		w->off = off + 1;
		return 0;
	}
	if (off + 2 > w->len)
		goto bad;
	__u32 l = w->b[(off + 1) & 63];
	if (l < (w->tcp ? 2 : 3) || off + l > w->len)
		goto bad;
	if (w->tcp) {
		if ((kind == 2 && l != 4) || (kind == 3 && l != 3) || (kind == 4 && l != 2) || (kind == 8 && l != 10))
			goto bad;
		if (kind == 2)
			w->mss = ((int)w->b[(off + 2) & 63] << 8) | w->b[(off + 3) & 63];
	}
	w->off = off + l;
	return 0;
bad:
	w->bad = 1;
	return 1;
}

// opts_check judges the len (1 … MAX_OPTS) bytes of IPv4 options (tcp = 0)
// or TCP options (tcp = 1) that start start bytes into the frame by the rule
// above. It returns -1 when they break it, else the MSS option's value (0
// when absent, always for IPv4). The bytes are copied out with
// bpf_xdp_load_bytes (Linux 5.18); each step consumes at least one byte, so
// MAX_OPTS steps reach the end.
static __always_inline int opts_check(struct xdp_md *ctx, __u32 start, __u32 len, __u32 tcp)
{
	struct opts_walk w = {.len = len, .tcp = tcp};
	if (len == 0 || len > MAX_OPTS)
		return -1;
	// the arithmetic only shows the verifier 1 ≤ len ≤ sizeof(w.b)
	if (bpf_xdp_load_bytes(ctx, start, w.b, ((len - 1) & 63) + 1))
		return -1;
	for (int i = 0; i < MAX_OPTS; i++)
		if (opts_step(&w))
			break;
	return w.bad ? -1 : w.mss;
}

SEC("xdp")
int reach_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		goto pass;
	__u16 proto = eth->h_proto;
	int l2 = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (data + l2 + 4 > end)
			goto pass;
		proto = *(__u16 *)(data + l2 + 2);
		l2 += 4;
	}
	if (proto != bpf_htons(ETH_P_IP))
		goto pass;
	struct iphdr *ip = data + l2;
	if ((void *)(ip + 1) > end)
		goto pass;
	if (ip->protocol != IPPROTO_TCP || ip->version != 4)
		goto pass;
	__u32 daddr = bpf_ntohl(ip->daddr);
	if (daddr < src_first || daddr > src_last)
		goto pass;
	int ihl = ip->ihl * 4;
	if (ihl < 20 || ihl > 60)
		goto malformed;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < (__u32)ihl || (void *)ip + tot > end)
		goto malformed;
	void *ip_end = (void *)ip + tot; // Ethernet padding lies beyond
	if (ihl > 20 && opts_check(ctx, l2 + 20, ihl - 20, 0) < 0)
		goto malformed;
	if (ip->frag_off & bpf_htons(0x3fff))
		goto pass; // fragments are not ours to judge
	struct tcphdr *tcp = data + l2 + ihl;
	if ((void *)(tcp + 1) > end || (void *)(tcp + 1) > ip_end)
		goto malformed;
	__u32 dport = bpf_ntohs(tcp->dest);
	__u32 wcount = window_count;
	if (dport < window_first || dport - window_first >= wcount)
		goto pass; // not a scan port: the host's own connection
	int thl = tcp->doff * 4;
	if (thl < 20 || (void *)tcp + thl > ip_end)
		goto malformed;
	int mss = thl > 20 ? opts_check(ctx, l2 + ihl + 20, thl - 20, 1) : 0;
	if (mss < 0)
		goto malformed;
	// helper calls end the verifier's knowledge of packet bounds: re-derive
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + l2;
	tcp = data + l2 + ihl;
	if ((void *)(ip + 1) > end || (void *)(tcp + 1) > end)
		goto malformed;

	__u32 saddr = bpf_ntohl(ip->saddr);
	__u16 sport = bpf_ntohs(tcp->source);
	__u64 h0 = siphash12(daddr, saddr, 0, sport);
	__u32 off = (__u32)(h0 >> 32) % wcount;
	__u32 k = (dport - window_first + wcount - off) % wcount;
	if (k >= probes)
		goto bad;
	__u32 seq = (__u32)siphash12(daddr, saddr, (__u16)dport, sport);
	__u32 ack = bpf_ntohl(tcp->ack_seq);
	int synack = tcp->syn && tcp->ack && !tcp->rst;
	if (synack) {
		if (ack != seq + 1)
			goto bad;
	} else if (tcp->rst) {
		if (ack != seq + 1 && ack != seq)
			goto bad;
	} else {
		goto bad;
	}

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->ts = bpf_ktime_get_ns();
		e->saddr = saddr;
		e->ack = ack;
		e->sport = sport;
		e->dport = (__u16)dport;
		e->window = bpf_ntohs(tcp->window);
		e->mss = (__u16)mss;
		e->flags = ((__u8 *)tcp)[13];
		e->ttl = ip->ttl;
		__builtin_memset(e->pad, 0, sizeof(e->pad));
		e->daddr = daddr;
		bpf_ringbuf_submit(e, 0);
	} else {
		count(C_RINGBUF_FULL);
	}
	if (!synack) {
		count(C_RST);
		return XDP_DROP;
	}
	count(C_SYNACK);
	if (!send_reset)
		return XDP_DROP;
	if (send_reset == 2)
		return XDP_PASS; // the kernel answers it with an RST

	// Rewrite into Ethernet (+VLAN) / IPv4 (20 bytes) / TCP RST (20 bytes):
	// from us to the target, seq = the target's ack (RFC 9293 §3.10.7.1).
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	int newlen = l2 + 40;
	int delta = newlen - (int)(end - data);
	if (ihl != 20) {
		// move TCP ports next to a 20-byte IP header; the rest is rewritten
		struct tcphdr *nt = data + l2 + 20;
		if ((void *)(nt + 1) > end)
			goto reset_failed;
		nt->source = bpf_htons((__u16)dport);
		nt->dest = bpf_htons(sport);
	} else {
		tcp->source = bpf_htons((__u16)dport);
		tcp->dest = bpf_htons(sport);
	}
	if (delta < 0 && bpf_xdp_adjust_tail(ctx, delta))
		goto reset_failed;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	ip = data + l2;
	tcp = data + l2 + 20;
	if ((void *)(tcp + 1) > end)
		goto reset_failed;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(40);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->saddr = bpf_htonl(daddr);
	ip->daddr = bpf_htonl(saddr);
	ip->check = 0;
	ip->check = bpf_htons(csum_fold(sum16((const __u8 *)ip, 20)));
	tcp->seq = bpf_htonl(ack);
	tcp->ack_seq = 0;
	((__u8 *)tcp)[12] = 5 << 4;
	((__u8 *)tcp)[13] = 0x04; // RST
	tcp->window = 0;
	tcp->check = 0;
	tcp->urg_ptr = 0;
	__u64 ps = (daddr >> 16) + (daddr & 0xffff) + (saddr >> 16) + (saddr & 0xffff) + IPPROTO_TCP + 20;
	tcp->check = bpf_htons(csum_fold(ps + sum16((const __u8 *)tcp, 20)));
	count(C_TX);
	return XDP_TX;

reset_failed:
	count(C_RESET_FAILED); // the reply was reported; the RST could not be built
	return XDP_DROP;
bad:
	count(C_BAD_COOKIE);
	return XDP_DROP;
malformed:
	count(C_MALFORMED);
	return XDP_PASS;
pass:
	count(C_PASSED);
	return XDP_PASS;
}
