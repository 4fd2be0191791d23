//go:build ignore

// responder.c — an XDP program that plays a whole network of hosts for
// benchmarks, so the far side is never the bottleneck: every TCP SYN to
// 198.19.0.0/16 is answered in place and sent back with XDP_TX, as a SYN-ACK
// when the ground truth says the pair is open, as an RST otherwise.
//
// Ground truth (non-uniform on purpose): an address a with (a mod 11) = 0
// is silent (never answers); otherwise port p is open when p is one of 22,
// 80, 443, 3306, 5432, 6379, 8080 and (a mod 7) is not 0, and every other
// pair is closed (RST). Package responder has the same function in Go.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../../bpf/csum.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static __always_inline int is_open(__u32 addr, __u16 port)
{
	if (addr % 11 == 0)
		return 0;
	switch (port) {
	case 22: case 80: case 443: case 3306: case 5432: case 6379: case 8080:
		return addr % 7 != 0;
	}
	return 0;
}

static __always_inline int answer(struct xdp_md *ctx, int pass_servers)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	__u32 daddr = bpf_ntohl(ip->daddr);
	if ((daddr >> 16) != 0xC613) // 198.19.0.0/16
		return XDP_PASS;
	if (pass_servers && (daddr >> 8) == 0xC61301) // 198.19.1.0/24: the real servers
		return XDP_PASS;
	struct tcphdr *tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	if (daddr % 11 == 0)
		return XDP_DROP; // a silent host: no answer at all
	if (!tcp->syn || tcp->ack || tcp->rst)
		return XDP_DROP; // our RST answers and anything else: absorbed
	__u16 dport = bpf_ntohs(tcp->dest);
	int open = is_open(daddr, dport);

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__u32 a = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = a;
	ip->ttl = 61;
	__u16 p = tcp->source;
	tcp->source = tcp->dest;
	tcp->dest = p;
	__u32 seq = bpf_ntohl(tcp->seq);
	tcp->ack_seq = bpf_htonl(seq + 1);
	tcp->seq = open ? bpf_htonl(daddr ^ 0x5eed5eed) : 0;
	((__u8 *)tcp)[13] = open ? 0x12 : 0x14; // SYN|ACK or RST|ACK
	tcp->window = open ? bpf_htons(29200) : 0;
	// keep the SYN's length and options: only fixed fields changed, so
	// recompute both checksums over the fixed headers and options
	ip->check = 0;
	__u64 s = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	ip->check = csum_fold(s);
	__u16 tlen = bpf_ntohs(ip->tot_len) - 20;
	if (tlen < 20 || tlen > 60 || (void *)tcp + tlen > end)
		return XDP_DROP;
	tcp->check = 0;
	s = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) + bpf_htons(IPPROTO_TCP) + bpf_htons(tlen);
	w = (__u16 *)tcp;
#pragma unroll
	for (int i = 0; i < 30; i++) {
		if (i * 2 + 2 > tlen || (void *)(w + i + 1) > end)
			break;
		s += w[i];
	}
	// re-derive the header after the loop: clang may reuse the loop's
	// pointer register, whose bounds the verifier no longer knows
	struct tcphdr *t2 = (void *)(long)ctx->data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	if ((void *)(t2 + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	t2->check = csum_fold(s);
	return XDP_TX;
}

SEC("xdp")
int respond(struct xdp_md *ctx) { return answer(ctx, 0); }

// respond_servers leaves 198.19.1.0/24 to the kernel and the real servers
// there (bench/testnet StartServers); it needs the namespace's AnyIP route.
SEC("xdp/servers")
int respond_servers(struct xdp_md *ctx) { return answer(ctx, 1); }

// pass passes every frame to the kernel: on the net side it plays a far
// end whose driver delivers XDP_TX (a veth delivers it only to a peer
// running an XDP program) while the kernel and its listeners answer.
SEC("xdp/pass")
int pass(struct xdp_md *ctx) { return XDP_PASS; }

// sink drops every frame: the far side of a send-rate benchmark, counted by
// the veth's xdp_drops statistic.
SEC("xdp/sink")
int sink(struct xdp_md *ctx) { return XDP_DROP; }
