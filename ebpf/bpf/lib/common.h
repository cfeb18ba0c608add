/* Shared definitions for every fsm program: constants, the settings record and small helpers.
 *
 * BCC compiles one text: the loader inlines `#include "lib/..."` (with #line markers) because BCC
 * only rewrites map calls in its main file. Each header is therefore guarded and self-contained.
 */
#ifndef FSM_LIB_COMMON_H
#define FSM_LIB_COMMON_H

#include <linux/in.h>
#include <linux/in6.h>

#define FSM_AF_INET 2
#define FSM_AF_INET6 10
#define FSM_SOCK_STREAM 1
#define FSM_SOL_IP 0
#define FSM_SOL_IPV6 41
#define FSM_SO_ORIGINAL_DST 80 /* SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST */

/* cgroup sock_addr/sockopt programs: 1 = let the call proceed. */
#define FSM_ALLOW 1

#ifndef NULL
#define NULL ((void *)0)
#endif

#define fsm_bswap16(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define fsm_bswap32(x) ((__u32)__builtin_bswap32((__u32)(x)))
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define fsm_htons(x) fsm_bswap16(x)
#define fsm_ntohs(x) fsm_bswap16(x)
#define fsm_htonl(x) fsm_bswap32(x)
#define fsm_ntohl(x) fsm_bswap32(x)
#else
#define fsm_htons(x) ((__u16)(x))
#define fsm_ntohs(x) ((__u16)(x))
#define fsm_htonl(x) ((__u32)(x))
#define fsm_ntohl(x) ((__u32)(x))
#endif

/* Settings record, index 0 of fsm_settings; fsm-init fills it from its options.
 * Addresses are in network byte order, ports in host byte order. */
struct fsm_settings {
	__u32 proxy_uid;
	__u32 pod_ip4;    /* 0 = unknown */
	__u32 pod_ip6[4]; /* all zero = unknown */
	__u16 outbound_port;
	__u16 inbound_port;
	__u32 flags;
};

#define FSM_F_INCLUDE4 (1U << 0) /* an IPv4 inclusion list exists: redirect only those CIDRs */
#define FSM_F_INCLUDE6 (1U << 1)
#define FSM_F_IPV6 (1U << 2)     /* redirect native IPv6 connects (else they go direct) */

/* Counters in fsm_stats (index → meaning); mirrored by ebpf/plan.py STAT_NAMES. */
#define FSM_STAT_REDIRECT4 0
#define FSM_STAT_REDIRECT6 1
#define FSM_STAT_SELF_INBOUND 2
#define FSM_STAT_ORIGIN_ANSWERED 3
#define FSM_STAT_SOCKHASH_INSERT 4
#define FSM_STAT_SKMSG_MSGS 5
#define FSM_STAT_SKMSG_BYTES 6
#define FSM_STAT_MAX 8

/* The original destination of a redirected connection. */
struct fsm_origin {
	__u32 ip[4]; /* IPv4 in ip[0]; network order */
	__u16 port;  /* host order */
	__u16 family;
};

/* A connection as seen from the connecting (app) side; addresses network order, ports host order. */
struct fsm_tuple4 {
	__u32 sip;
	__u32 dip;
	__u16 sport;
	__u16 dport;
};

struct fsm_tuple6 {
	__u32 sip[4];
	__u32 dip[4];
	__u16 sport;
	__u16 dport;
};

/* LPM trie keys; addresses as bytes so user space fills them without byte-order games. */
struct fsm_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct fsm_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

static __always_inline int fsm_is_loopback4(__u32 ip)
{
	return (ip & fsm_htonl(0xff000000)) == fsm_htonl(0x7f000000);
}

static __always_inline int fsm_is_loopback6(const __u32 ip[4])
{
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] == fsm_htonl(1);
}

/* ::ffff:a.b.c.d — an IPv6 socket talking IPv4 (Java and friends do this). */
static __always_inline int fsm_is_v4mapped(const __u32 ip[4])
{
	return ip[0] == 0 && ip[1] == 0 && ip[2] == fsm_htonl(0x0000ffff);
}

/* clang 14 merges adjacent 4-byte context stores into one 8-byte store the verifier rejects;
 * a volatile store keeps each write separate. */
static __always_inline void fsm_ctx_store(volatile __u32 *field, __u32 value)
{
	*field = value;
}

#endif /* FSM_LIB_COMMON_H */
