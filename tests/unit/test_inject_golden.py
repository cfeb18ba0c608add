"""Golden files: tests/unit/testdata/inject/X.yaml (namespace, pod, meshconfig) → X.injected.yaml.

Regenerate after an intended change with FSM_ONBOARD_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import jsonpatch
import pytest
import yaml

from webhook.inject import Context, inject, load_templates
from webhook.meshconfig import parse_mesh_config

DATA = Path(__file__).parent / "testdata" / "inject"
CASES = sorted(p.stem for p in DATA.glob("*.yaml") if not p.name.endswith(".injected.yaml"))
UUID = "00000000-0000-4000-8000-000000000001"
TEMPLATES = load_templates()


def run_case(name: str):
    case = yaml.safe_load((DATA / f"{name}.yaml").read_text())
    config = parse_mesh_config(case.get("meshconfig"), strict=True)
    return case, inject(case["pod"], case["namespace"], config, TEMPLATES, Context(), new_uuid=lambda: UUID)


def test_cases_exist():
    assert len(CASES) >= 6, CASES


@pytest.mark.parametrize("name", CASES)
def test_golden(name):
    _case, outcome = run_case(name)
    assert outcome.rendered is not None, outcome.decision
    got = {"warnings": outcome.warnings, "pod": outcome.rendered.pod, "bootstrap": outcome.rendered.bootstrap}
    golden = DATA / f"{name}.injected.yaml"
    text = yaml.safe_dump(got, sort_keys=False)
    if os.environ.get("FSM_ONBOARD_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with FSM_ONBOARD_UPDATE_GOLDEN=1"
    assert yaml.safe_load(text) == yaml.safe_load(golden.read_text())


@pytest.mark.parametrize("name", CASES)
def test_patch_applies_to_original(name):
    case, outcome = run_case(name)
    assert jsonpatch.apply_patch(case["pod"], outcome.patch) == outcome.rendered.pod


@pytest.mark.parametrize("name", CASES)
def test_reinjection_is_a_no_op(name):
    case, outcome = run_case(name)
    again = inject(
        outcome.rendered.pod,
        case["namespace"],
        parse_mesh_config(case.get("meshconfig")),
        TEMPLATES,
        Context(),
    )
    assert again.rendered is None and again.patch == []
    assert again.decision.reason == "already-injected"


def test_renderer_provides_exactly_the_values_templates_may_use():
    from webhook.inject.render import _values
    from webhook.inject.settings import resolve_settings
    from webhook.inject.templates import VALUE_NAMES

    settings = resolve_settings({}, {}, parse_mesh_config(None))
    provided = set(_values({}, "ns", settings, Context(), UUID, {})) | {"init_args"}
    assert provided == VALUE_NAMES
