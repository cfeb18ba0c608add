"""Appliers and backend detection against a recording executor (the kernel path is in tests/netns)."""

from __future__ import annotations

import pytest

from initcontainer.apply import (
    IptablesBackend,
    RedirectError,
    apply_iptables,
    apply_nft,
    detect_backend,
    diagnose,
)
from initcontainer.executor import RecordingExecutor, Result
from initcontainer.netinfo import NetInfo
from initcontainer.options import Options
from initcontainer.redirect import Target, apply_redirect, families_for, resolve

ALL = frozenset(
    {
        "iptables",
        "iptables-legacy",
        "iptables-legacy-save",
        "iptables-legacy-restore",
        "ip6tables-legacy",
        "ip6tables-legacy-save",
        "ip6tables-legacy-restore",
        "iptables-nft",
        "iptables-nft-save",
        "iptables-nft-restore",
        "ip6tables-nft",
        "ip6tables-nft-save",
        "ip6tables-nft-restore",
        "nft",
    }
)


def responder(
    saves: dict[str, str] | None = None, fail: dict[str, Result] | None = None, version: str = "nf_tables"
):
    saves, fail = saves or {}, fail or {}

    def answer(argv: tuple[str, ...], stdin: str | None) -> Result | None:
        if argv[0] in fail:
            return fail[argv[0]]
        if argv[:2] == ("iptables", "--version"):
            return Result(argv, 0, f"iptables v1.8.9 ({version})\n")
        if argv[0].endswith("-save"):
            return Result(argv, 0, saves.get(argv[0], ""))
        return None

    return answer


def test_prefers_backend_holding_our_rules_over_default() -> None:
    ex = RecordingExecutor(
        responder({"iptables-legacy-save": "*nat\n-A PREROUTING -p tcp -j FSM_PROXY_INBOUND\nCOMMIT\n"}), ALL
    )
    backend, log = detect_backend(ex, (4,))
    assert backend == IptablesBackend("legacy")
    assert any("fsm-init chains present" in line for line in log)


def test_prefers_backend_with_more_rules_then_default() -> None:
    kube = "*nat\n" + "-A KUBE-SERVICES -j RETURN\n" * 3
    ex = RecordingExecutor(responder({"iptables-legacy-save": kube}), ALL)
    assert detect_backend(ex, (4,))[0].variant == "legacy"
    ex = RecordingExecutor(responder(version="legacy"), ALL)
    assert detect_backend(ex, (4,))[0].variant == "legacy"
    ex = RecordingExecutor(responder(version="nf_tables"), ALL)
    assert detect_backend(ex, (4,))[0].variant == "nft"


def test_falls_back_when_nat_table_is_missing_and_says_why() -> None:
    broken = Result(
        ("iptables-nft",),
        1,
        "",
        "iptables v1.8.9 (nf_tables): can't initialize iptables table `nat': Table does not exist (do you need to insmod?)",
    )
    ex = RecordingExecutor(responder(fail={"iptables-nft": broken}), ALL)
    backend, log = detect_backend(ex, (4,))
    assert backend.variant == "legacy"
    assert any("no usable nat support" in line for line in log)


def test_nothing_works_reports_missing_capability() -> None:
    denied = Result(("x",), 4, "", "iptables v1.8.9: Permission denied (you must be root)")
    ex = RecordingExecutor(responder(fail={"iptables-nft": denied, "iptables-legacy": denied}), ALL)
    with pytest.raises(RedirectError) as err:
        detect_backend(ex, (4,))
    assert "CAP_NET_ADMIN" in str(err.value)


def test_missing_binaries_are_named() -> None:
    ex = RecordingExecutor(responder(), frozenset({"nft"}))
    with pytest.raises(RedirectError, match="is installed in the fsm-init image"):
        detect_backend(ex, (4,))
    with pytest.raises(RedirectError, match="iptables-legacy-restore is not installed"):
        detect_backend(ex, (4,), forced="legacy")


def test_one_restore_call_per_family_and_rollback_on_ipv6_failure() -> None:
    fail6 = Result(("ip6tables-nft-restore",), 2, "", "ip6tables-restore: line 3 failed")
    ex = RecordingExecutor(responder(fail={"ip6tables-nft-restore": fail6}), ALL)
    with pytest.raises(RedirectError):
        apply_iptables(ex, IptablesBackend("nft"), Options(), (4, 6))
    restores = [(argv, stdin) for argv, stdin in ex.calls if argv[0].endswith("-restore")]
    assert [argv[0] for argv, _ in restores] == [
        "iptables-nft-restore",
        "ip6tables-nft-restore",
        "iptables-nft-restore",
    ]
    assert all(argv[1:] == ("--noflush",) for argv, _ in restores)
    assert "-X FSM_PROXY_INBOUND" in (restores[-1][1] or "")  # IPv4 rolled back: nothing half-applied


def test_nft_is_one_atomic_transaction() -> None:
    ex = RecordingExecutor(responder(), ALL)
    script = apply_nft(ex, Options(), (4, 6))
    assert ex.calls == [(("nft", "-f", "-"), script)]
    assert script.splitlines()[1:3] == ["table inet fsm_proxy", "delete table inet fsm_proxy"]


def test_diagnose_messages() -> None:
    assert "not installed" in diagnose(Result(("nft",), 127, "", ""), "nft")
    msg = diagnose(
        Result(("nft",), 1, "", "Error: Could not process rule: Operation not permitted"), "nft -f"
    )
    assert "CAP_NET_ADMIN" in msg


def test_diagnose_does_not_blame_the_kernel_for_a_rejected_script() -> None:
    syntax = diagnose(
        Result(("nft", "-f", "-"), 1, "", 'Error: All-wildcard strings are not supported\noifname "+"'),
        "nft -f",
    )
    assert "nat support" not in syntax and "rejected the generated rules" in syntax
    missing = diagnose(
        Result(("nft", "-f", "-"), 1, "", "Error: Could not process rule: Operation not supported"), "nft -f"
    )
    assert "nat support" in missing
    legacy = diagnose(
        Result(("iptables-legacy",), 3, "", "can't initialize iptables table `nat': Table does not exist"),
        "x",
    )
    assert "nat support" in legacy


def test_families_detection() -> None:
    v6 = NetInfo(addresses={4: ("10.0.0.2",), 6: ("fd00::2",)}, ipv6_enabled=True)
    assert families_for(Options(), v6) == (4, 6)
    assert families_for(Options(), NetInfo(addresses={4: ("10.0.0.2",), 6: ()}, ipv6_enabled=True)) == (4,)
    assert families_for(Options(ipv6=False), v6) == (4,)
    assert families_for(Options(pod_ip="fd00::9"), None) == (4, 6)


def test_auto_without_ebpf_module_falls_back_to_iptables_with_reason() -> None:
    logs: list[str] = []
    ex = RecordingExecutor(responder(), ALL)
    target = resolve(Options(mode="auto", cgroup="/nonexistent"), ex, (4,), log=logs.append)
    if target.kind != "ebpf":
        assert target.kind == "iptables"
        assert any(line.startswith("auto: ebpf not used:") for line in logs)


def test_dry_run_runs_no_restore_and_no_nft() -> None:
    ex = RecordingExecutor(responder(), ALL)
    out = apply_redirect(
        Options(dry_run=True, ipv6=True),
        executor=ex,
        target=Target("iptables", IptablesBackend("nft")),
        log=lambda _m: None,
    )
    assert "-A FSM_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15003" in out
    assert not [argv for argv, _ in ex.calls if argv[0].endswith("-restore") or argv[0] == "nft"]


def test_legacy_rules_are_read_without_creating_the_nat_table() -> None:
    # `iptables-legacy-save -t nat` would create the nat table; plain save only dumps existing ones.
    from initcontainer.apply import current_rules

    dump = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n*nat\n-A PREROUTING -p tcp -j FSM_PROXY_INBOUND\nCOMMIT\n"
    ex = RecordingExecutor(responder({"iptables-legacy-save": dump}), ALL)
    got = current_rules(ex, IptablesBackend("legacy"), 4)
    assert got.stdout == "*nat\n-A PREROUTING -p tcp -j FSM_PROXY_INBOUND\nCOMMIT\n"
    assert [argv for argv, _ in ex.calls] == [("iptables-legacy-save",)]
    assert current_rules(RecordingExecutor(responder(), ALL), IptablesBackend("legacy"), 6).stdout == ""
    ex = RecordingExecutor(responder(), ALL)
    current_rules(ex, IptablesBackend("nft"), 4)
    assert [argv for argv, _ in ex.calls] == [("iptables-nft-save", "-t", "nat")]
