"""Fixtures for the chart tests: the real, pinned helm binary (built from its Go module by
dev/build.sh and cached, as tests/e2e does) and a renderer around `helm template`.

If helm cannot be built the tests FAIL with the reason; they are never skipped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fsm-onboard"
# helm built from its Go module without Kubernetes version ldflags assumes Kubernetes v1.20 when no
# cluster is asked; the chart needs >= 1.25, so rendering names the dev control plane's version.
KUBE_VERSION = "v1.36.3"


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and res.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} exited {res.returncode}:\n{res.stderr}", pytrace=False)
        return res

    def template(
        self, *sets: str, namespace: str = "fsm-system", extra: Sequence[str] = (), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", "fsm-onboard", str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
        for s in sets:
            args += ["--set", s]
        return self.run(*args, *extra, check=check)


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The pinned helm binary (dev/build.sh helm: built once into ~/.cache/fsm-onboard)."""
    script = ROOT / "dev" / "build.sh"
    res = subprocess.run([str(script), "helm"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.fail(f"cannot build helm with dev/build.sh helm: {res.stderr.strip()}", pytrace=False)
    path = subprocess.run([str(script), "path", "helm"], capture_output=True, text=True, check=False)
    binary = Path(path.stdout.strip()) / "helm"
    if path.returncode != 0 or not binary.is_file():
        pytest.fail(
            f"dev/build.sh path helm: no helm binary ({path.stderr.strip() or binary})", pytrace=False
        )
    return Helm(binary)


Objects = dict[tuple[str, str], dict[str, Any]]


def objects(text: str) -> Objects:
    """`helm template` output keyed by (kind, name)."""
    out: Objects = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} rendered twice"
            out[key] = doc
    return out


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., Objects]:
    """Render the chart with `--set` overrides and parse it; cached per argument list."""
    cache: dict[tuple[Any, ...], Objects] = {}

    def _render(*sets: str, namespace: str = "fsm-system", extra: Sequence[str] = ()) -> Objects:
        key = (sets, namespace, tuple(extra))
        if key not in cache:
            cache[key] = objects(helm.template(*sets, namespace=namespace, extra=extra).stdout)
        return cache[key]

    return _render
