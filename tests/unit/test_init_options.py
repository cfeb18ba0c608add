"""fsm-init options: flags, environment, precedence and field-named validation errors."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from initcontainer.cli import main
from initcontainer.options import Options, OptionsError, env_name, parse_options


def test_defaults_match_fsm() -> None:
    opts = parse_options([], {})
    assert opts == Options()
    assert (opts.proxy_uid, opts.inbound_port, opts.outbound_port) == (1500, 15003, 15001)
    assert opts.bypass_ports == (15010, 15901, 15902, 15903, 15904)


def test_lists_mix_families_trim_and_deduplicate() -> None:
    opts = parse_options(
        [
            "--outbound-ip-range-exclusion-list",
            " 10.0.0.1/8, fd00::/8 ,10.0.0.0/8,192.168.1.1",
            "--inbound-port-exclusion-list",
            "80, 443,80",
            "--network-interface-exclusion-list",
            "eth1,veth+",
        ],
        {},
    )
    assert opts.outbound_ip_range_exclusions == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("192.168.1.1/32"),
    )
    assert opts.inbound_port_exclusions == (80, 443)
    assert opts.network_interface_exclusions == ("eth1", "veth+")


def test_environment_and_flag_precedence() -> None:
    env = {
        "FSM_INIT_OUTBOUND_PORT_EXCLUSION_LIST": "53",
        "FSM_INIT_MODE": "nftables",
        "FSM_INIT_DRY_RUN": "true",
        "POD_IP": "10.244.0.9",
    }
    opts = parse_options(["--mode", "iptables-legacy"], env)
    assert opts.mode == "iptables-legacy"  # the flag wins
    assert opts.outbound_port_exclusions == (53,)
    assert opts.dry_run is True
    assert opts.pod_ip == "10.244.0.9"
    assert env_name("--outbound-ip-range-inclusion-list") == "FSM_INIT_OUTBOUND_IP_RANGE_INCLUSION_LIST"


def test_case_insensitive_choices_are_normalised() -> None:
    opts = parse_options(["--mode", "NFTABLES", "--local-proxy-mode", "podip", "--pod-ip", "fd00::1"], {})
    assert (opts.mode, opts.local_proxy_mode, opts.pod_ip) == ("nftables", "PodIP", "fd00::1")


@pytest.mark.parametrize(
    ("argv", "env", "option"),
    [
        (["--inbound-port", "0"], {}, "--inbound-port"),
        (["--outbound-port", "x"], {}, "--outbound-port"),
        (["--inbound-port-exclusion-list", "80,65536"], {}, "--inbound-port-exclusion-list"),
        (["--outbound-ip-range-exclusion-list", "10.0.0.0/40"], {}, "--outbound-ip-range-exclusion-list"),
        (["--outbound-ip-range-inclusion-list", "nope"], {}, "--outbound-ip-range-inclusion-list"),
        (
            ["--network-interface-exclusion-list", "a-very-long-interface-name"],
            {},
            "--network-interface-exclusion-list",
        ),
        (["--mode", "ipchains"], {}, "--mode"),
        (["--local-proxy-mode", "Sidecar"], {}, "--local-proxy-mode"),
        (["--proxy-uid", "-1"], {}, "--proxy-uid"),
        (["--inbound-port", "15001"], {}, "--inbound-port"),
        ([], {"POD_IP": "10.0.0.300"}, "POD_IP"),
        ([], {"FSM_INIT_OUTBOUND_PORT_EXCLUSION_LIST": "1,2,three"}, "FSM_INIT_OUTBOUND_PORT_EXCLUSION_LIST"),
        (["--no-such-flag"], {}, "--no-such-flag"),
        (["--mod", "nftables"], {}, "--mod"),
        (["--network-interface-exclusion-list", "+"], {}, "--network-interface-exclusion-list"),
        (["--network-interface-exclusion-list", "eth1,+"], {}, "--network-interface-exclusion-list"),
        (["--pod-ip", "fe80::1%rv0"], {}, "--pod-ip"),
        (["--pod-ip", "fe80::1"], {}, "--pod-ip"),
        (["--pod-ip", "169.254.1.1"], {}, "--pod-ip"),
        ([], {"POD_IP": "fe80::1%eth0"}, "POD_IP"),
        (["--mode", "ebpf", "--local-proxy-mode", "PodIP"], {}, "--local-proxy-mode"),
    ],
)
def test_invalid_values_name_the_option(argv: list[str], env: dict[str, str], option: str) -> None:
    with pytest.raises(OptionsError) as err:
        parse_options(argv, env)
    assert err.value.option == option
    assert err.value.reason


def test_cli_exit_code_2_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--outbound-ip-range-exclusion-list", "10.0.0.0/99"]) == 2
    err = capsys.readouterr().err
    assert "--outbound-ip-range-exclusion-list" in err and "Traceback" not in err


@given(st.lists(st.integers(min_value=1, max_value=65535), max_size=40))
def test_any_valid_port_list_round_trips(ports: list[int]) -> None:
    opts = parse_options(["--outbound-port-exclusion-list", ",".join(map(str, ports))], {})
    assert opts.outbound_port_exclusions == tuple(dict.fromkeys(ports))


@given(st.integers().filter(lambda p: not 1 <= p <= 65535))
def test_any_invalid_port_is_rejected(port: int) -> None:
    with pytest.raises(OptionsError):
        parse_options(["--inbound-port", str(port)], {})


def test_wildcards_with_a_prefix_and_podip_outside_ebpf_stay_valid() -> None:
    opts = parse_options(["--network-interface-exclusion-list", "eth+,veth0"], {})
    assert opts.network_interface_exclusions == ("eth+", "veth0")
    assert parse_options(["--mode", "auto", "--local-proxy-mode", "PodIP"], {}).local_proxy_mode == "PodIP"
    # cleanup takes the same args as the apply run; PodIP there must not block removing ebpf state
    assert parse_options(["--mode", "ebpf", "--local-proxy-mode", "PodIP", "--cleanup"], {}).cleanup


def test_cli_rejects_scoped_pod_ip_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pod-ip", "fe80::1%rv0", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "invalid option --pod-ip" in err and "zone" in err and "Traceback" not in err
