"""eBPF traffic redirection for `fsm-init --mode ebpf` (see docs/ebpf.md).

redirect.py  the API fsm-init calls: apply / cleanup / unavailable_reason
plan.py      pure: Options → map contents, programs, feature cflags
loader.py    the only module importing bcc: compile, verifier-load, fill maps, pin, attach
headers.py   kernel header tree for BCC (installed headers, else a cached stub tree)
cgroup.py    finding the pod's cgroup v2 directory
syscall.py   bpf(2) commands bcc lacks (pin, lookup, query, detach)
bpf/         the C programs: one entry file per attach point, shared code in bpf/lib/
"""
