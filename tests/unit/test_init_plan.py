"""Golden files for the pure planner: the same scenario names for iptables (v4, v6) and nft.

Regenerate with FSM_ONBOARD_UPDATE_GOLDEN=1 after an intended change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from initcontainer.options import Options, parse_options
from initcontainer.plan import (
    existing_jumps,
    iptables_cleanup_text,
    iptables_restore_text,
    iptables_rules,
    nft_script,
    plan,
)

GOLDEN = Path(__file__).with_name("test_init_golden")
UPDATE = os.environ.get("FSM_ONBOARD_UPDATE_GOLDEN") == "1"

SCENARIOS: dict[str, tuple[list[str], dict[str, object]]] = {
    "defaults": ([], {}),
    "exclusions": (
        [
            "--inbound-port-exclusion-list",
            "8081,9000",
            "--outbound-port-exclusion-list",
            "3306",
            "--outbound-ip-range-exclusion-list",
            "10.96.0.0/12,169.254.169.254/32,fd00:10:96::/112",
            "--network-interface-exclusion-list",
            "eth1,net+",
        ],
        {},
    ),
    "inclusions": (
        [
            "--outbound-ip-range-inclusion-list",
            "10.0.0.0/8,fd00::/8",
            "--outbound-port-exclusion-list",
            "443",
        ],
        {},
    ),
    "inclusions_v4_only": (["--outbound-ip-range-inclusion-list", "10.0.0.0/8"], {}),
    "podip": (
        ["--local-proxy-mode", "PodIP", "--pod-ip", "10.244.1.7"],
        {"pod_ips": {4: "10.244.1.7", 6: "fd00:244::7"}},
    ),
    "many_ports": (["--inbound-port-exclusion-list", ",".join(str(p) for p in range(9001, 9021))], {}),
    "custom_proxy": (["--proxy-uid", "1337", "--inbound-port", "16003", "--outbound-port", "16001"], {}),
    "inbound_only": (["--inbound-port-exclusion-list", "8081"], {"inbound_only": True}),
}


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with FSM_ONBOARD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs; run with FSM_ONBOARD_UPDATE_GOLDEN=1 and review"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden(scenario: str) -> None:
    argv, kwargs = SCENARIOS[scenario]
    opts = parse_options(argv, env={})
    result = plan(opts, families=(4, 6), **kwargs)  # type: ignore[arg-type]
    _check(f"{scenario}.v4.iptables", result.iptables[4])
    _check(f"{scenario}.v6.iptables", result.iptables[6])
    _check(f"{scenario}.nft", result.nft)


def test_builtin_chains_only_get_jumps() -> None:
    opts = parse_options(
        ["--local-proxy-mode", "PodIP", "--pod-ip", "10.0.0.5", "--inbound-port-exclusion-list", "1"], {}
    )
    for fam in (4, 6):
        for rule in iptables_rules(opts, fam, pod_ip="10.0.0.5" if fam == 4 else None):
            chain = rule.split()[1]
            if not chain.startswith("FSM_PROXY_"):
                assert rule.endswith(("-j FSM_PROXY_INBOUND", "-j FSM_PROXY_OUTBOUND")), rule


def test_fsm_order_outbound() -> None:
    """FSM's outbound order: loopback/UID rules, then exclusions, then inclusions, then redirect."""
    opts = parse_options(
        [
            "--outbound-ip-range-exclusion-list",
            "10.1.0.0/16",
            "--outbound-ip-range-inclusion-list",
            "10.0.0.0/8",
            "--outbound-port-exclusion-list",
            "53",
        ],
        {},
    )
    rules = [r for r in iptables_rules(opts, 4) if r.startswith("-A FSM_PROXY_OUTBOUND")]
    assert rules == [
        "-A FSM_PROXY_OUTBOUND ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1500 -j FSM_PROXY_IN_REDIRECT",
        "-A FSM_PROXY_OUTBOUND -o lo -m owner ! --uid-owner 1500 -j RETURN",
        "-A FSM_PROXY_OUTBOUND -m owner --uid-owner 1500 -j RETURN",
        "-A FSM_PROXY_OUTBOUND -d 127.0.0.1/32 -j RETURN",
        "-A FSM_PROXY_OUTBOUND -d 10.1.0.0/16 -j RETURN",
        "-A FSM_PROXY_OUTBOUND -p tcp -m tcp --dport 53 -j RETURN",
        "-A FSM_PROXY_OUTBOUND -d 10.0.0.0/8 -j FSM_PROXY_OUT_REDIRECT",
        "-A FSM_PROXY_OUTBOUND -j RETURN",
    ]


def test_inclusions_of_one_family_stop_interception_of_the_other() -> None:
    opts = parse_options(["--outbound-ip-range-inclusion-list", "10.0.0.0/8"], {})
    v6 = iptables_rules(opts, 6)
    assert "-A FSM_PROXY_OUTBOUND -j RETURN" in v6
    assert not any("-j FSM_PROXY_OUT_REDIRECT" in r and "FSM_PROXY_OUTBOUND" in r for r in v6)


def test_multiport_is_chunked_at_15() -> None:
    opts = Options(inbound_port_exclusions=tuple(range(1, 32)))
    multis = [r for r in iptables_rules(opts, 4) if "multiport" in r]
    assert [len(r.split("--dports ")[1].split(" ")[0].split(",")) for r in multis] == [15, 15, 1]


def test_restore_text_replaces_existing_jumps_instead_of_duplicating() -> None:
    current = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:FSM_PROXY_INBOUND - [0:0]\n"
        "-A PREROUTING -j KUBE-SERVICES\n"
        "-A PREROUTING -p tcp -j FSM_PROXY_INBOUND\n"
        "-A OUTPUT -p tcp -j FSM_PROXY_OUTBOUND\nCOMMIT\n"
    )
    assert existing_jumps(current) == [
        "-A PREROUTING -p tcp -j FSM_PROXY_INBOUND",
        "-A OUTPUT -p tcp -j FSM_PROXY_OUTBOUND",
    ]
    text = iptables_restore_text(Options(), 4, current=current)
    lines = text.splitlines()
    assert lines.index("-D PREROUTING -p tcp -j FSM_PROXY_INBOUND") < lines.index(
        "-A PREROUTING -p tcp -j FSM_PROXY_INBOUND"
    )
    assert "KUBE-SERVICES" not in text
    cleanup = iptables_cleanup_text(current).splitlines()
    assert cleanup.index("-D OUTPUT -p tcp -j FSM_PROXY_OUTBOUND") < cleanup.index("-X FSM_PROXY_OUTBOUND")


def test_ipv4_ranges_never_reach_ipv6_rules() -> None:
    opts = parse_options(["--outbound-ip-range-exclusion-list", "10.0.0.0/8,fd00::/8"], {})
    assert not any("10.0.0.0" in r for r in iptables_rules(opts, 6))
    assert not any("fd00::" in r for r in iptables_rules(opts, 4))


def test_nft_v4_only_pod_returns_ipv6_early() -> None:
    script = nft_script(Options(), (4,))
    assert "meta nfproto ipv6 return" in script and "ip6 daddr" not in script


def test_plan_is_pure_and_deterministic() -> None:
    opts = parse_options(["--outbound-ip-range-exclusion-list", "10.0.0.0/8"], {})
    assert plan(opts) == plan(opts)
