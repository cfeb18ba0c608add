"""The small templating layer over ``sidecar_templates/``: YAML parsed once, placeholders filled per pod.

Templates are data, parsed once at start-up (YAML parsing per admission would cost milliseconds).
Rendering walks the parsed tree: a string that is exactly ``${name}`` becomes the value itself
(any type), ``${name}`` inside text is substituted as text, a key rendering to ``None`` is dropped,
and an object holding ``$if: name`` is kept only when ``name`` is truthy (dropped from a list,
``None`` as a value). Users override a template per mesh by giving a file of the same name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TEMPLATE_NAMES", "TemplateError", "Templates", "load_templates", "render"]

TEMPLATE_NAMES = ("sidecar.yaml", "init.yaml", "volumes.yaml")
# The values render.py provides: the contract between templates and renderer. A template naming
# anything else is rejected when it is loaded, not when the first pod arrives.
VALUE_NAMES = frozenset({
    "sidecar_image", "sidecar_args", "sidecar_ports", "sidecar_env", "sidecar_resources",
    "sidecar_restart_policy", "sidecar_lifecycle", "hold_application", "graceful_exit",
    "inbound_port_hex", "proxy_uid", "init_image", "init_privileged", "init_capabilities",
    "init_volume_mounts", "init_args", "ebpf", "bootstrap_secret", "cn_prefix", "service_account",
})  # fmt: skip
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DROP = object()


class TemplateError(ValueError):
    """A template file is unreadable, not YAML, or refers to a value the renderer does not know."""


@dataclasses.dataclass(frozen=True)
class Templates:
    sidecar: dict[str, Any]
    init: dict[str, Any]
    volumes: list[Any]
    # Short hash of the template texts: recorded in the sidecar-status annotation.
    version: str
    sources: dict[str, str]


def _read_default(name: str) -> str:
    return resources.files("sidecar_templates").joinpath(name).read_text()


def load_templates(override_dir: str | Path | None = None) -> Templates:
    """Load the packaged templates, replacing any that ``override_dir`` holds under the same name."""
    texts: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in TEMPLATE_NAMES:
        path = Path(override_dir, name) if override_dir else None
        if path is not None and path.is_file():
            texts[name], sources[name] = path.read_text(), str(path)
        else:
            texts[name], sources[name] = _read_default(name), "builtin"
    parsed: dict[str, Any] = {}
    for name, text in texts.items():
        try:
            parsed[name] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateError(f"template {sources[name]} ({name}): not valid YAML: {exc}") from None
    for name, kind in (("sidecar.yaml", dict), ("init.yaml", dict), ("volumes.yaml", list)):
        if not isinstance(parsed[name], kind):
            raise TemplateError(f"template {sources[name]} ({name}): expected a YAML {kind.__name__}")
    for name in TEMPLATE_NAMES:
        unknown = sorted(_names(parsed[name]) - VALUE_NAMES)
        if unknown:
            raise TemplateError(
                f"template {sources[name]} ({name}): unknown value(s) {', '.join('${' + u + '}' for u in unknown)}; "
                f"known: {', '.join(sorted(VALUE_NAMES))}"
            )
    digest = hashlib.sha256("\0".join(texts[n] for n in TEMPLATE_NAMES).encode()).hexdigest()[:12]
    return Templates(parsed["sidecar.yaml"], parsed["init.yaml"], parsed["volumes.yaml"], digest, sources)


def _names(node: Any) -> set[str]:
    """Every placeholder and ``$if`` name used in a parsed template."""
    if isinstance(node, str):
        return set(_PLACEHOLDER.findall(node))
    if isinstance(node, dict):
        out = {str(node["$if"])} if "$if" in node else set()
        for value in node.values():
            out |= _names(value)
        return out
    if isinstance(node, list):
        return set().union(*(_names(item) for item in node)) if node else set()
    return set()


def render(tree: Any, values: Mapping[str, Any]) -> Any:
    """Fill one parsed template with ``values``; unknown placeholders raise TemplateError."""
    out = _render(tree, values)
    return None if out is _DROP else out


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    try:
        return values[name]
    except KeyError:
        raise TemplateError(f"template refers to unknown value ${{{name}}}") from None


def _render(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        if "${" not in node:
            return node
        whole = _PLACEHOLDER.fullmatch(node)
        if whole:
            return _lookup(values, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: str(_lookup(values, m.group(1))), node)
    if isinstance(node, dict):
        cond = node.get("$if")
        if cond is not None and not _lookup(values, cond):
            return _DROP
        out: dict[str, Any] = {}
        for key, child in node.items():
            if key == "$if":
                continue
            value = _render(child, values)
            if value is not None and value is not _DROP:
                out[key] = value
        return out
    if isinstance(node, list):
        items = [_render(child, values) for child in node]
        return [item for item in items if item is not _DROP]
    return node
