"""JSONPatch (RFC 6902) from the original raw pod to the mutated one.

A structural diff rather than ``jsonpatch.make_patch``: it compares subtrees with ``==`` (C speed),
recurses only where they differ, and turns appends into ``add .../-`` so a patch stays small and
applies cleanly on top of fields added by other webhooks. A list that grows is diffed item by item
and extended; a list that shrinks is replaced whole.
"""

from __future__ import annotations

from typing import Any

__all__ = ["escape", "make_patch"]


def escape(token: str) -> str:
    """A JSON Pointer reference token (``flomesh.io/x`` → ``flomesh.io~1x``)."""
    return token.replace("~", "~0").replace("/", "~1")


def make_patch(original: Any, mutated: Any) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    _diff(original, mutated, "", ops)
    return ops


def _diff(a: Any, b: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if a == b and type(a) is type(b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in b.items():
            sub = f"{path}/{escape(key)}"
            if key not in a:
                ops.append({"op": "add", "path": sub, "value": value})
            else:
                _diff(a[key], value, sub, ops)
        return
    if isinstance(a, list) and isinstance(b, list) and len(b) >= len(a):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}/{i}", ops)
        ops.extend({"op": "add", "path": f"{path}/-", "value": item} for item in b[len(a) :])
        return
    ops.append({"op": "replace", "path": path, "value": b})
