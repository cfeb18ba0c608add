"""Static checks of the Dockerfile (no container engine on this machine, so the images are not built
here): the stages, the server's non-root USER, entrypoints that are the declared console scripts, the
init image's Debian packages matching scripts/install-system-deps.sh, and a build context that holds
every file the Dockerfile copies."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

# install-system-deps.sh also installs tools only the tests and developers use.
TEST_ONLY_PACKAGES = {"bpfcc-tools", "openssl", "curl"}
# The init image's own interpreter and venv support (the dev machine's come with the OS).
IMAGE_ONLY_PACKAGES = {"python3", "python3-venv"}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with `\\` continuations joined and comments dropped (default escape char)."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        out.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a line continuation"
    return out


def parse(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            m = re.fullmatch(
                r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+([a-z0-9][a-z0-9_.-]*)", rest, re.IGNORECASE
            )
            assert m, f"every stage is named (FROM image AS name): {line!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            stage = Stage(m.group(2), stages[base].base if base in stages else base)
            assert stage.name not in stages, f"stage {stage.name} defined twice"
            stages[stage.name] = stage
        elif stage is None:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line!r}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stage.instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse(DOCKERFILE.read_text())[1]


def _exec_form(value: str | None) -> list[str]:
    assert value is not None
    parsed = json.loads(value)  # exec form: a JSON array, so signals reach the process (no sh -c)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)
    return parsed


def _console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _apt_packages(stage: Stage) -> set[str]:
    pkgs: set[str] = set()
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                pkgs |= {w for w in words[2:] if not w.startswith("-")}
    return pkgs


def _script_packages() -> set[str]:
    text = (ROOT / "scripts" / "install-system-deps.sh").read_text()
    m = re.search(r"^pkgs=\(([^)]*)\)", text, re.MULTILINE)
    assert m, "scripts/install-system-deps.sh: no pkgs=(...) list"
    return set(m.group(1).split())


def test_stages(stages: dict[str, Stage]) -> None:
    assert {"server", "init"} <= set(stages)
    assert re.fullmatch(r"python:3\.11-slim(-bookworm)?", stages["server"].base), stages["server"].base
    assert re.fullmatch(r"debian:bookworm(-slim)?", stages["init"].base), stages["init"].base


def test_server_runs_as_non_root(stages: dict[str, Stage]) -> None:
    user = stages["server"].last("USER")
    assert user is not None, "the server stage sets no USER (it would run as root)"
    uid, _, gid = user.partition(":")
    assert uid == "65532" and gid in ("", "65532"), user  # numeric, so runAsNonRoot can verify it
    assert stages["server"].all("EXPOSE") == ["9090"]


def test_entrypoints_are_the_console_scripts(stages: dict[str, Stage]) -> None:
    scripts = _console_scripts()
    assert _exec_form(stages["server"].last("ENTRYPOINT")) == ["fsm-onboard"]
    assert _exec_form(stages["server"].last("CMD")) == ["serve"]
    assert _exec_form(stages["init"].last("ENTRYPOINT")) == ["fsm-init"]
    assert {"fsm-onboard", "fsm-init"} <= set(scripts)
    assert scripts["fsm-onboard"] == "webhook.cli:main" and scripts["fsm-init"] == "initcontainer.cli:main"
    # The injected init container runs the same command (sidecar_templates/init.yaml).
    init_template = yaml.safe_load((ROOT / "sidecar_templates" / "init.yaml").read_text())
    assert init_template["command"] == ["fsm-init"]


def test_init_runs_as_root_by_design(stages: dict[str, Stage]) -> None:
    # fsm-init programs netfilter/BPF in the pod's network namespace: root with NET_ADMIN/NET_RAW.
    assert stages["init"].last("USER") in (None, "0", "0:0", "root")


def test_package_installed_with_constraints(stages: dict[str, Stage]) -> None:
    server_chain = [s for s in stages.values() if s.name in ("server", "server-build")]
    for chain, name in ((server_chain, "server"), ([stages["init"]], "init")):
        runs = " ".join(run for s in chain for run in s.all("RUN"))
        assert re.search(r"pip install -c constraints\.txt \.(\s|$)", runs), (
            f"{name}: no `pip install -c constraints.txt .`"
        )
    copied = " ".join(stages["server"].all("COPY"))
    assert "--from=server-build /opt/fsm-onboard" in copied


def test_init_packages_match_install_system_deps(stages: dict[str, Stage]) -> None:
    image = _apt_packages(stages["init"])
    script = _script_packages()
    assert {"iptables", "nftables", "python3-bpfcc", "libbpfcc", "linux-libc-dev"} <= image
    assert image - IMAGE_ONLY_PACKAGES == script - TEST_ONLY_PACKAGES, (
        f"only in the image: {sorted(image - IMAGE_ONLY_PACKAGES - script)}; "
        f"only in install-system-deps.sh: {sorted(script - TEST_ONLY_PACKAGES - image)}"
    )


def test_init_links_debian_bcc_like_link_bcc_sh(stages: dict[str, Stage]) -> None:
    init = stages["init"]
    assert any("scripts/link-bcc.sh" in c for c in init.all("COPY"))
    runs = " ".join(init.all("RUN"))
    assert "link-bcc.sh /opt/fsm-onboard" in runs
    assert "import bcc" in runs  # the build fails when bcc cannot be imported from the venv
    assert "FSM_BPF_HEADER_CACHE=" in " ".join(init.all("ENV"))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pat).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.match(regex, c) for c in candidates) or (
            pat.startswith("**/") and fnmatch.fnmatch(path, pat[3:])
        ):
            excluded = not negate
    return excluded


def test_build_context_holds_what_is_copied(stages: dict[str, Stage]) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert _ignored(".venv/bin/python", patterns) and _ignored(".git/HEAD", patterns)
    assert _ignored("tests/unit/test_decide.py", patterns) and _ignored("webhook/__pycache__/x.pyc", patterns)
    sources: set[str] = set()
    for stage in stages.values():
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if "--from=" not in copy:
                sources |= set(words[:-1])
    assert sources, "the Dockerfile copies nothing from the context"
    for src in sorted(sources):
        path = ROOT / src
        assert path.exists(), f"COPY {src}: no such file in the repository"
        files = (
            [path]
            if path.is_file()
            else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            assert not _ignored(rel, patterns), f"COPY {src}: {rel} is excluded by .dockerignore"
    # pyproject's readme and package-data must be in the context for `pip install .`.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["readme"] in sources
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in sources, f"package {package} is not copied into the image"


def test_chart_and_meshconfig_name_the_images(stages: dict[str, Stage]) -> None:
    values = yaml.safe_load((ROOT / "charts" / "fsm-onboard" / "values.yaml").read_text())
    assert values["image"]["repository"] == "flomesh/fsm-onboard"  # --target server
    init_image = values["meshConfig"]["spec"]["sidecar"]["initContainerImage"]
    assert init_image.startswith("flomesh/fsm-onboard-init:")  # --target init
    header = DOCKERFILE.read_text()
    assert (
        "--target server -t flomesh/fsm-onboard:" in header and f"--target init   -t {init_image}" in header
    )
