/* sockops: when a connection is established, move the original destination from the socket cookie
 * to the connection tuple (what getsockopt can see from the proxy side) and, with ENABLE_SKMSG, put
 * local sockets into the sockhash so sk_msg can hand bytes straight to the peer. */
#include "lib/common.h"
#include "lib/maps.h"

static __always_inline void sockops_keep_origin(struct bpf_sock_ops *skops, void *tuple, int v6)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct fsm_origin *origin = fsm_origin_ck.lookup(&cookie);

	if (!origin)
		return;
	if (v6)
		fsm_origin6.update((struct fsm_tuple6 *)tuple, origin);
	else
		fsm_origin4.update((struct fsm_tuple4 *)tuple, origin);
	fsm_origin_ck.delete(&cookie);
}

static __always_inline void sockops4(struct bpf_sock_ops *skops, __u32 op, __u32 sip, __u32 dip)
{
	struct fsm_tuple4 t = {};

	t.sip = sip;
	t.dip = dip;
	t.sport = (__u16)skops->local_port;
	t.dport = (__u16)fsm_ntohl(skops->remote_port);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		sockops_keep_origin(skops, &t, 0);
#ifdef ENABLE_SKMSG
	if (fsm_is_loopback4(dip) || dip == sip) {
		long ret;

		/* (BCC rewrites map methods only as whole statements) */
		ret = fsm_sockhash4.sock_hash_update(skops, &t, BPF_ANY);
		if (ret == 0)
			fsm_stat_add(FSM_STAT_SOCKHASH_INSERT, 1);
	}
#endif
}

#ifdef ENABLE_IPV6
static __always_inline void sockops6(struct bpf_sock_ops *skops, __u32 op)
{
	struct fsm_tuple6 t = {};

	t.sip[0] = skops->local_ip6[0];
	t.sip[1] = skops->local_ip6[1];
	t.sip[2] = skops->local_ip6[2];
	t.sip[3] = skops->local_ip6[3];
	t.dip[0] = skops->remote_ip6[0];
	t.dip[1] = skops->remote_ip6[1];
	t.dip[2] = skops->remote_ip6[2];
	t.dip[3] = skops->remote_ip6[3];
	t.sport = (__u16)skops->local_port;
	t.dport = (__u16)fsm_ntohl(skops->remote_port);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		sockops_keep_origin(skops, &t, 1);
#ifdef ENABLE_SKMSG
	if (fsm_is_loopback6(t.dip) || (t.dip[0] == t.sip[0] && t.dip[1] == t.sip[1] && t.dip[2] == t.sip[2] &&
					t.dip[3] == t.sip[3])) {
		long ret;

		/* (BCC rewrites map methods only as whole statements) */
		ret = fsm_sockhash6.sock_hash_update(skops, &t, BPF_ANY);
		if (ret == 0)
			fsm_stat_add(FSM_STAT_SOCKHASH_INSERT, 1);
	}
#endif
}
#endif

int fsm_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	__u32 lip[4], rip[4];

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (skops->family == FSM_AF_INET) {
		sockops4(skops, op, skops->local_ip4, skops->remote_ip4);
		return 1;
	}
	if (skops->family != FSM_AF_INET6)
		return 1;
	lip[0] = skops->local_ip6[0];
	lip[1] = skops->local_ip6[1];
	lip[2] = skops->local_ip6[2];
	lip[3] = skops->local_ip6[3];
	rip[0] = skops->remote_ip6[0];
	rip[1] = skops->remote_ip6[1];
	rip[2] = skops->remote_ip6[2];
	rip[3] = skops->remote_ip6[3];
	if (fsm_is_v4mapped(lip) && fsm_is_v4mapped(rip)) {
		/* An IPv6 socket speaking IPv4: the proxy's IPv4 socket sees the plain IPv4 tuple. */
		sockops4(skops, op, lip[3], rip[3]);
		return 1;
	}
#ifdef ENABLE_IPV6
	sockops6(skops, op);
#endif
	return 1;
}
