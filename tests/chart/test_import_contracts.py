"""The import-linter contracts (.importlinter) hold, and cover every module: a new module of webhook/
or ebpf/ must be listed (or be one of the few allowed to import `kubernetes` / `bcc`)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Modules allowed to import the kubernetes library / bcc (with everything below them).
KUBERNETES_ALLOWED = ("webhook.kube", "webhook.certs.kube")
BCC_ALLOWED = ("ebpf.loader",)


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def _listed(section: str, key: str) -> list[str]:
    return [
        line.strip()
        for line in _config()[section][key].splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _modules(package: str) -> list[str]:
    base = ROOT / package
    out = []
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def _under(module: str, prefixes: list[str] | tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_lint_imports_passes() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail(f"{lint} is missing: install the dev extras (make venv)", pytrace=False)
    res = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_every_webhook_module_is_bound_by_the_kubernetes_contract() -> None:
    sources = _listed("importlinter:contract:kubernetes-library", "source_modules")
    inits = _listed("importlinter:contract:kubernetes-library-package-inits", "source_modules")
    for module in _modules("webhook") + _modules("initcontainer") + _modules("ebpf"):
        if _under(module, KUBERNETES_ALLOWED):
            continue
        assert _under(module, sources) or module in inits, (
            f"{module} is not listed in .importlinter's kubernetes-library contract"
        )
    assert not any(_under(s, KUBERNETES_ALLOWED) for s in sources)


def test_every_ebpf_module_but_the_loader_is_bound_by_the_bcc_contract() -> None:
    sources = _listed("importlinter:contract:bcc", "source_modules")
    assert {"webhook", "initcontainer"} <= set(sources)
    for module in _modules("ebpf"):
        if module == "ebpf" or _under(module, BCC_ALLOWED):
            continue
        assert _under(module, sources), f"{module} is not listed in .importlinter's bcc contract"
