"""`certs show` on a cert dir and the argparse wiring (errors are one line, never a traceback)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from webhook.certs.cli import add_certs_commands, main
from webhook.certs.files import ensure_cert_dir
from webhook.certs.show import certs_show

ROOT = Path(__file__).resolve().parents[2]


def test_show_cert_dir(tmp_path: Path) -> None:
    ensure_cert_dir(tmp_path, ["fsm-onboard.fsm-system.svc", "localhost", "127.0.0.1"], key_type="rsa-2048")
    out = certs_show(tmp_path)
    assert "CA: CN=fsm-onboard mesh CA" in out
    assert "serving cert: CN=fsm-onboard.fsm-system.svc" in out
    assert "SANs:     DNS:fsm-onboard.fsm-system.svc, DNS:localhost, IP:127.0.0.1" in out
    assert "key:      RSA 2048" in out
    assert "(chain OK)" in out
    assert "in 90.0 days" in out
    assert "PRIVATE" not in out


def test_wiring_into_a_parent_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ensure_cert_dir(tmp_path, ["localhost"])
    parser = argparse.ArgumentParser(prog="fsm-onboard")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")  # the lead's other commands live beside ours
    add_certs_commands(sub)
    args = parser.parse_args(["certs", "show", "--cert-dir", str(tmp_path)])
    assert args.func(args) == 0
    assert "serving cert: CN=localhost" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["certs", "show"], "give --cert-dir and/or --namespace"),
        (["certs", "show", "--cert-dir", "/nonexistent"], "cert_dir: /nonexistent is not a directory"),
        (["certs", "rotate-ca", "begin", "--key-type", "dsa"], "--key-type: unsupported key type 'dsa'"),
        (["certs", "rotate-ca", "begin", "--ca-cert", "x.pem"], "--ca-cert and --ca-key: give both"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_duration_is_an_argparse_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "webhook.certs.cli", "certs", "rotate-ca", "begin", "--validity", "10y"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "argument --validity: '10y' is not a duration like '24h'" in out.stderr
    assert "Traceback" not in out.stderr
