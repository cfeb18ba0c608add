"""MeshConfig objects: every field checked with the same parser the webhook applies them with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook import constants as c
from webhook.meshconfig import MeshConfigError, parse_mesh_config

__all__ = ["validate_meshconfig"]


def validate_meshconfig(obj: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings): unknown and mistyped fields are errors, each naming its path."""
    warnings = []
    name = (obj.get("metadata") or {}).get("name")
    if name and name != c.MESH_CONFIG_NAME:
        warnings.append(
            f"fsm-onboard reads only the MeshConfig named {c.MESH_CONFIG_NAME!r}; {name!r} has no effect"
        )
    try:
        parse_mesh_config(obj, strict=True)
    except MeshConfigError as exc:
        return [f"{path}: {reason}" for path, reason in exc.errors], warnings
    return [], warnings
