"""CA rotation as a pure state machine over the contents of the CA Secret.

    steady ──begin(new CA)──▶ added ──switch──▶ switched ──finish──▶ steady
                               └──abort──▶ steady

- steady:   sign with A, trust {A}
- added:    sign with A, trust {A, B}   every peer learns to trust B before anything is signed by it
- switched: sign with B, trust {A, B}   leaves are re-issued by B; A's leaves still verify
- steady:   sign with B, trust {B}      only once no leaf signed by A is in use

Secret keys: `ca.crt` + `private.key` (the signing CA, FSM's names), `next.crt` + `next.key` (the
CA being added), `previous.crt` (the old CA, still trusted after the switch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs.bundle import Bundle
from webhook.certs.ca import CA, fingerprint, load_cert_pem
from webhook.certs.errors import CertError

__all__ = [
    "CA_CERT_KEY",
    "CA_KEY_KEY",
    "NEXT_CERT_KEY",
    "NEXT_KEY_KEY",
    "PREVIOUS_CERT_KEY",
    "CAState",
    "Phase",
    "abort",
    "begin",
    "finish",
    "switch",
]

CA_CERT_KEY, CA_KEY_KEY = "ca.crt", "private.key"
NEXT_CERT_KEY, NEXT_KEY_KEY = "next.crt", "next.key"
PREVIOUS_CERT_KEY = "previous.crt"
Phase = Literal["steady", "added", "switched"]


@dataclass(frozen=True)
class CAState:
    signing: CA
    pending: CA | None = None
    previous: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if self.pending is not None and self.previous is not None:
            raise CertError("CA state: a new CA cannot be added before the last rotation finished")

    @property
    def phase(self) -> Phase:
        if self.pending is not None:
            return "added"
        if self.previous is not None:
            return "switched"
        return "steady"

    @property
    def trust(self) -> Bundle:
        """Every CA a peer must accept right now (old first)."""
        certs = [c for c in (self.previous, self.signing.cert) if c is not None]
        if self.pending is not None:
            certs.append(self.pending.cert)
        return Bundle(tuple(certs))

    def to_data(self) -> dict[str, bytes]:
        data = {CA_CERT_KEY: self.signing.cert_pem, CA_KEY_KEY: self.signing.key_pem}
        if self.pending is not None:
            data[NEXT_CERT_KEY] = self.pending.cert_pem
            data[NEXT_KEY_KEY] = self.pending.key_pem
        if self.previous is not None:
            data[PREVIOUS_CERT_KEY] = self.previous.public_bytes(Encoding.PEM)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, bytes], *, source: str) -> CAState:
        """Parse Secret data (already base64-decoded); errors name the Secret and the key."""
        for k in (CA_CERT_KEY, CA_KEY_KEY):
            if not data.get(k):
                raise CertError(f"{source}: key {k!r} is missing")
        signing = CA.from_pem(data[CA_CERT_KEY], data[CA_KEY_KEY], source=f"{source}[{CA_CERT_KEY}]")
        pending = None
        if data.get(NEXT_CERT_KEY) or data.get(NEXT_KEY_KEY):
            if not (data.get(NEXT_CERT_KEY) and data.get(NEXT_KEY_KEY)):
                raise CertError(f"{source}: {NEXT_CERT_KEY!r} and {NEXT_KEY_KEY!r} must be present together")
            pending = CA.from_pem(
                data[NEXT_CERT_KEY], data[NEXT_KEY_KEY], source=f"{source}[{NEXT_CERT_KEY}]"
            )
        previous = None
        if data.get(PREVIOUS_CERT_KEY):
            previous = load_cert_pem(data[PREVIOUS_CERT_KEY], field=f"{source}[{PREVIOUS_CERT_KEY}]")
        return cls(signing=signing, pending=pending, previous=previous)

    def describe(self) -> str:
        parts = [f"phase={self.phase}", f"signing={self.signing.fingerprint[:16]}"]
        if self.pending is not None:
            parts.append(f"pending={self.pending.fingerprint[:16]}")
        if self.previous is not None:
            parts.append(f"previous={fingerprint(self.previous)[:16]}")
        return " ".join(parts)


def _need(state: CAState, phase: Phase, step: str) -> None:
    if state.phase != phase:
        raise CertError(f"rotate-ca {step}: the CA is in phase {state.phase!r}; {step!r} needs {phase!r}")


def begin(state: CAState, new_ca: CA) -> CAState:
    """Trust a new CA alongside the current one; nothing is signed by it yet."""
    _need(state, "steady", "begin")
    if new_ca.fingerprint == state.signing.fingerprint:
        raise CertError("rotate-ca begin: the new CA is the current CA")
    return replace(state, pending=new_ca)


def switch(state: CAState) -> CAState:
    """Sign with the new CA; keep trusting the old one."""
    _need(state, "added", "switch")
    assert state.pending is not None
    return CAState(signing=state.pending, previous=state.signing.cert)


def finish(state: CAState) -> CAState:
    """Stop trusting the old CA."""
    _need(state, "switched", "finish")
    return CAState(signing=state.signing)


def abort(state: CAState) -> CAState:
    """Forget a CA that was added but never signed anything."""
    _need(state, "added", "abort")
    return CAState(signing=state.signing)
