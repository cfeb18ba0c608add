"""The one exception family of `ebpf/`: every failure carries a sentence a pod's log reader can act on.

RedirectError (initcontainer: fsm-init prints it as `fsm-init: error: ...`, exit 1)
└── EbpfError            setting up or tearing down eBPF redirection failed
    └── EbpfUnavailable  this node/pod cannot use eBPF (no cgroup v2, no CAP_BPF, bcc, verifier...)
"""

from __future__ import annotations

from initcontainer.apply import RedirectError

__all__ = ["EbpfError", "EbpfUnavailable"]


class EbpfError(RedirectError):
    """eBPF redirection failed while being set up or torn down (the message says what and why)."""


class EbpfUnavailable(EbpfError):
    """This node/pod cannot use eBPF redirection; `--mode auto` falls back on it."""
