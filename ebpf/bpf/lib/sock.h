/* Outbound connect decisions (sock4_/sock6_) and the origin bookkeeping shared by the hooks.
 * The rules mirror FSM's iptables OUTPUT chain: loopback, the proxy UID, excluded ports and CIDRs go
 * direct; with an inclusion list only those CIDRs are redirected. */
#ifndef FSM_LIB_SOCK_H
#define FSM_LIB_SOCK_H

#include "lib/common.h"
#include "lib/maps.h"

static __always_inline int sock_port_excluded(__u16 dport)
{
	return fsm_out_excl_ports.lookup(&dport) != NULL;
}

static __always_inline int sock4_should_redirect(const struct fsm_settings *s, __u32 dip, __u16 dport)
{
	struct fsm_lpm4_key key = {.prefixlen = 32};

	/* The pod's own address goes over lo, where FSM's `-o lo ! --uid-owner proxy -j RETURN` lets
	 * it through: the app calling itself is not proxied. */
	if (fsm_is_loopback4(dip) || (s->pod_ip4 && dip == s->pod_ip4) || sock_port_excluded(dport))
		return 0;
	__builtin_memcpy(key.addr, &dip, 4);
	if (fsm_excl_cidr4.lookup(&key))
		return 0;
	if ((s->flags & FSM_F_INCLUDE4) && !fsm_incl_cidr4.lookup(&key))
		return 0;
	return 1;
}

static __always_inline int sock6_is_pod_ip(const struct fsm_settings *s, const __u32 dip[4])
{
	if (!(s->pod_ip6[0] | s->pod_ip6[1] | s->pod_ip6[2] | s->pod_ip6[3]))
		return 0;
	return dip[0] == s->pod_ip6[0] && dip[1] == s->pod_ip6[1] && dip[2] == s->pod_ip6[2] &&
	       dip[3] == s->pod_ip6[3];
}

static __always_inline int sock6_should_redirect(const struct fsm_settings *s, const __u32 dip[4], __u16 dport)
{
	struct fsm_lpm6_key key = {.prefixlen = 128};

	if (!(s->flags & FSM_F_IPV6) || fsm_is_loopback6(dip) || sock6_is_pod_ip(s, dip) || sock_port_excluded(dport))
		return 0;
	__builtin_memcpy(key.addr, dip, 16);
	if (fsm_excl_cidr6.lookup(&key))
		return 0;
	if ((s->flags & FSM_F_INCLUDE6) && !fsm_incl_cidr6.lookup(&key))
		return 0;
	return 1;
}

/* Remember where the app wanted to go, keyed by socket cookie until sockops knows the tuple. */
static __always_inline void sock_remember(void *ctx, const struct fsm_origin *origin)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	fsm_origin_ck.update(&cookie, (struct fsm_origin *)origin);
}

static __always_inline int sock_is_proxy(const struct fsm_settings *s)
{
	return (__u32)bpf_get_current_uid_gid() == s->proxy_uid;
}

/* IPv4 destination `dip:dport`; `mapped` = it came from an IPv6 socket as ::ffff:a.b.c.d.
 * Returns the redirect counter to bump, or -1 when the connect goes direct. */
static __always_inline int sock4_redirect(struct bpf_sock_addr *ctx, const struct fsm_settings *s, __u32 dip,
					  __u16 dport, int mapped)
{
	struct fsm_origin origin = {.family = FSM_AF_INET, .port = dport};
	__u16 to_port;
	int stat;

	origin.ip[0] = dip;
	if (sock_is_proxy(s)) {
		/* The proxy calling the pod's own IP reaches the inbound listener (FSM's lo rule). */
		if (!s->pod_ip4 || dip != s->pod_ip4 || dport == s->inbound_port)
			return -1;
		to_port = s->inbound_port;
		stat = FSM_STAT_SELF_INBOUND;
	} else {
		if (!sock4_should_redirect(s, dip, dport))
			return -1;
		to_port = s->outbound_port;
		stat = FSM_STAT_REDIRECT4;
		if (mapped)
			fsm_ctx_store(&ctx->user_ip6[3], fsm_htonl(0x7f000001));
		else
			fsm_ctx_store(&ctx->user_ip4, fsm_htonl(0x7f000001));
	}
	sock_remember(ctx, &origin);
	fsm_ctx_store(&ctx->user_port, (__u32)fsm_htons(to_port));
	return stat;
}

#ifdef ENABLE_IPV6
static __always_inline int sock6_redirect(struct bpf_sock_addr *ctx, const struct fsm_settings *s, const __u32 dip[4],
					  __u16 dport)
{
	struct fsm_origin origin = {.family = FSM_AF_INET6, .port = dport};

	if (sock_is_proxy(s) || !sock6_should_redirect(s, dip, dport))
		return -1;
	origin.ip[0] = dip[0];
	origin.ip[1] = dip[1];
	origin.ip[2] = dip[2];
	origin.ip[3] = dip[3];
	sock_remember(ctx, &origin);
	fsm_ctx_store(&ctx->user_ip6[0], 0);
	fsm_ctx_store(&ctx->user_ip6[1], 0);
	fsm_ctx_store(&ctx->user_ip6[2], 0);
	fsm_ctx_store(&ctx->user_ip6[3], fsm_htonl(1));
	fsm_ctx_store(&ctx->user_port, (__u32)fsm_htons(s->outbound_port));
	return FSM_STAT_REDIRECT6;
}
#endif

#endif /* FSM_LIB_SOCK_H */
