/* Every map, declared once. Names carry the fsm_ prefix; IPv4/IPv6 twins end in 4/6.
 * Sizes can be overridden through cflags (-DFSM_ORIGIN_MAX=...). */
#ifndef FSM_LIB_MAPS_H
#define FSM_LIB_MAPS_H

#include "lib/common.h"

#ifndef FSM_ORIGIN_MAX
#define FSM_ORIGIN_MAX 65536
#endif
#ifndef FSM_EXCL_MAX
#define FSM_EXCL_MAX 1024
#endif

/* Configuration written by fsm-init. */
BPF_ARRAY(fsm_settings, struct fsm_settings, 1);
BPF_HASH(fsm_out_excl_ports, __u16, __u8, FSM_EXCL_MAX);
BPF_LPM_TRIE(fsm_excl_cidr4, struct fsm_lpm4_key, __u8, FSM_EXCL_MAX);
BPF_LPM_TRIE(fsm_incl_cidr4, struct fsm_lpm4_key, __u8, FSM_EXCL_MAX);
BPF_LPM_TRIE(fsm_excl_cidr6, struct fsm_lpm6_key, __u8, FSM_EXCL_MAX);
BPF_LPM_TRIE(fsm_incl_cidr6, struct fsm_lpm6_key, __u8, FSM_EXCL_MAX);

/* connect → sockops: socket cookie → original destination (short-lived). */
BPF_TABLE("lru_hash", __u64, struct fsm_origin, fsm_origin_ck, FSM_ORIGIN_MAX);
/* sockops → getsockopt: the app side's tuple → original destination. */
BPF_TABLE("lru_hash", struct fsm_tuple4, struct fsm_origin, fsm_origin4, FSM_ORIGIN_MAX);
BPF_TABLE("lru_hash", struct fsm_tuple6, struct fsm_origin, fsm_origin6, FSM_ORIGIN_MAX);

#ifdef ENABLE_SKMSG
/* Local (loopback) sockets by their own tuple, for sk_msg redirection to the peer. */
BPF_SOCKHASH(fsm_sockhash4, struct fsm_tuple4, FSM_ORIGIN_MAX);
BPF_SOCKHASH(fsm_sockhash6, struct fsm_tuple6, FSM_ORIGIN_MAX);
#endif

BPF_ARRAY(fsm_stats, __u64, FSM_STAT_MAX);

static __always_inline struct fsm_settings *fsm_get_settings(void)
{
	int zero = 0;
	return fsm_settings.lookup(&zero);
}

static __always_inline void fsm_stat_add(int idx, __u64 n)
{
	__u64 *v = fsm_stats.lookup(&idx);
	if (v)
		__sync_fetch_and_add(v, n);
}

#endif /* FSM_LIB_MAPS_H */
