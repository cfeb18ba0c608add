"""Certificate errors::

CertError            bad input or unusable material; the message names the field and the reason
└── CAConflictError  the stored CA differs from the one this process expected (rotation races)
"""

from __future__ import annotations

__all__ = ["CAConflictError", "CertError"]


class CertError(Exception):
    """Bad configuration or certificate material; safe to show to a user (never holds key bytes)."""


class CAConflictError(CertError):
    """Another replica changed the CA Secret between our read and our write."""
