/* sk_msg (ENABLE_SKMSG): data sent on a local socket whose peer is in the sockhash goes straight to
 * the peer's receive queue, skipping the TCP/IP stack on the app <-> sidecar loopback leg. */
#include "lib/common.h"
#include "lib/maps.h"

int fsm_redir(struct sk_msg_md *msg)
{
	__u32 size = msg->size;
	long verdict = SK_DROP;

	if (msg->family == FSM_AF_INET) {
		struct fsm_tuple4 peer = {};

		peer.sip = msg->remote_ip4;
		peer.dip = msg->local_ip4;
		peer.sport = (__u16)fsm_ntohl(msg->remote_port);
		peer.dport = (__u16)msg->local_port;
		verdict = fsm_sockhash4.msg_redirect_hash(msg, &peer, BPF_F_INGRESS);
	} else if (msg->family == FSM_AF_INET6) {
		__u32 rip[4], lip[4];

		rip[0] = msg->remote_ip6[0];
		rip[1] = msg->remote_ip6[1];
		rip[2] = msg->remote_ip6[2];
		rip[3] = msg->remote_ip6[3];
		lip[0] = msg->local_ip6[0];
		lip[1] = msg->local_ip6[1];
		lip[2] = msg->local_ip6[2];
		lip[3] = msg->local_ip6[3];
		if (fsm_is_v4mapped(rip) && fsm_is_v4mapped(lip)) {
			struct fsm_tuple4 peer = {};

			peer.sip = rip[3];
			peer.dip = lip[3];
			peer.sport = (__u16)fsm_ntohl(msg->remote_port);
			peer.dport = (__u16)msg->local_port;
			verdict = fsm_sockhash4.msg_redirect_hash(msg, &peer, BPF_F_INGRESS);
		}
#ifdef ENABLE_IPV6
		else {
			struct fsm_tuple6 peer = {};

			__builtin_memcpy(peer.sip, rip, 16);
			__builtin_memcpy(peer.dip, lip, 16);
			peer.sport = (__u16)fsm_ntohl(msg->remote_port);
			peer.dport = (__u16)msg->local_port;
			verdict = fsm_sockhash6.msg_redirect_hash(msg, &peer, BPF_F_INGRESS);
		}
#endif
	}
	/* A missing peer makes the redirect helper answer SK_DROP without redirecting: pass instead. */
	if (verdict == SK_PASS) {
		fsm_stat_add(FSM_STAT_SKMSG_MSGS, 1);
		fsm_stat_add(FSM_STAT_SKMSG_BYTES, size);
	}
	return SK_PASS;
}
