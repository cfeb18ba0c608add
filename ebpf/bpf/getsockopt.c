/* cgroup/getsockopt: answer SO_ORIGINAL_DST for connections the connect hook redirected, so an
 * unchanged proxy (Pipy reads it exactly as with iptables REDIRECT) finds the original destination.
 * Connections we did not redirect keep the kernel's own answer (e.g. conntrack for inbound nat). */
#include "lib/common.h"
#include "lib/maps.h"

static __always_inline int sockopt4(struct bpf_sockopt *ctx, struct bpf_sock *sk)
{
	struct sockaddr_in *sa = ctx->optval;
	struct fsm_tuple4 t = {};
	struct fsm_origin *origin;

	/* The proxy holds the accepted socket: its peer is the app side of the tuple. */
	t.sip = sk->dst_ip4;
	t.sport = fsm_ntohs((__u16)sk->dst_port);
	t.dip = sk->src_ip4;
	t.dport = (__u16)sk->src_port;
	origin = fsm_origin4.lookup(&t);
	if (!origin || origin->family != FSM_AF_INET)
		return FSM_ALLOW;
	if ((void *)(sa + 1) > ctx->optval_end)
		return FSM_ALLOW; /* buffer too small: keep the kernel's answer */
	sa->sin_family = FSM_AF_INET;
	sa->sin_port = fsm_htons(origin->port);
	sa->sin_addr.s_addr = origin->ip[0];
	fsm_ctx_store((volatile __u32 *)&ctx->optlen, sizeof(*sa));
	fsm_ctx_store((volatile __u32 *)&ctx->retval, 0);
	fsm_stat_add(FSM_STAT_ORIGIN_ANSWERED, 1);
	return FSM_ALLOW;
}

#ifdef ENABLE_IPV6
static __always_inline int sockopt6(struct bpf_sockopt *ctx, struct bpf_sock *sk)
{
	struct sockaddr_in6 *sa = ctx->optval;
	struct fsm_tuple6 t = {};
	struct fsm_origin *origin;

	t.sip[0] = sk->dst_ip6[0];
	t.sip[1] = sk->dst_ip6[1];
	t.sip[2] = sk->dst_ip6[2];
	t.sip[3] = sk->dst_ip6[3];
	t.dip[0] = sk->src_ip6[0];
	t.dip[1] = sk->src_ip6[1];
	t.dip[2] = sk->src_ip6[2];
	t.dip[3] = sk->src_ip6[3];
	t.sport = fsm_ntohs((__u16)sk->dst_port);
	t.dport = (__u16)sk->src_port;
	origin = fsm_origin6.lookup(&t);
	if (!origin || origin->family != FSM_AF_INET6)
		return FSM_ALLOW;
	if ((void *)(sa + 1) > ctx->optval_end)
		return FSM_ALLOW;
	sa->sin6_family = FSM_AF_INET6;
	sa->sin6_port = fsm_htons(origin->port);
	sa->sin6_flowinfo = 0;
	sa->sin6_addr.in6_u.u6_addr32[0] = origin->ip[0];
	sa->sin6_addr.in6_u.u6_addr32[1] = origin->ip[1];
	sa->sin6_addr.in6_u.u6_addr32[2] = origin->ip[2];
	sa->sin6_addr.in6_u.u6_addr32[3] = origin->ip[3];
	sa->sin6_scope_id = 0;
	fsm_ctx_store((volatile __u32 *)&ctx->optlen, sizeof(*sa));
	fsm_ctx_store((volatile __u32 *)&ctx->retval, 0);
	fsm_stat_add(FSM_STAT_ORIGIN_ANSWERED, 1);
	return FSM_ALLOW;
}
#endif

int fsm_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (ctx->optname != FSM_SO_ORIGINAL_DST || !sk)
		return FSM_ALLOW;
	if (ctx->level == FSM_SOL_IP && sk->family == FSM_AF_INET)
		return sockopt4(ctx, sk);
#ifdef ENABLE_IPV6
	if (ctx->level == FSM_SOL_IPV6 && sk->family == FSM_AF_INET6)
		return sockopt6(ctx, sk);
#endif
	return FSM_ALLOW;
}
