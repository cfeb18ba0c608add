/* cgroup/connect4 and cgroup/connect6: send outbound TCP connects to the outbound proxy port. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/sock.h"

static __always_inline struct fsm_settings *connect_settings(struct bpf_sock_addr *ctx)
{
	struct fsm_settings *s;

	if (ctx->type != FSM_SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return NULL;
	s = fsm_get_settings();
	if (!s || !s->outbound_port)
		return NULL; /* not configured yet: everything goes direct */
	return s;
}

int fsm_connect4(struct bpf_sock_addr *ctx)
{
	struct fsm_settings *s = connect_settings(ctx);
	int stat;

	if (!s)
		return FSM_ALLOW;
	stat = sock4_redirect(ctx, s, ctx->user_ip4, fsm_ntohs((__u16)ctx->user_port), 0);
	if (stat >= 0)
		fsm_stat_add(stat, 1);
	return FSM_ALLOW;
}

int fsm_connect6(struct bpf_sock_addr *ctx)
{
	struct fsm_settings *s = connect_settings(ctx);
	__u16 dport;
	__u32 dip[4];
	int stat = -1;

	if (!s)
		return FSM_ALLOW;
	dip[0] = ctx->user_ip6[0];
	dip[1] = ctx->user_ip6[1];
	dip[2] = ctx->user_ip6[2];
	dip[3] = ctx->user_ip6[3];
	dport = fsm_ntohs((__u16)ctx->user_port);
	if (fsm_is_v4mapped(dip))
		stat = sock4_redirect(ctx, s, dip[3], dport, 1);
#ifdef ENABLE_IPV6
	else
		stat = sock6_redirect(ctx, s, dip, dport);
#endif
	if (stat >= 0)
		fsm_stat_add(stat, 1);
	return FSM_ALLOW;
}
