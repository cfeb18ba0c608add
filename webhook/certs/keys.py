"""Private keys: generation, PKCS8 PEM, and short human descriptions.

ECDSA P-256 is the default because it is ~1000x cheaper to generate than RSA-2048 and every
Pipy/OpenSSL build speaks it; RSA stays available for peers that need it.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, cast, get_args

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.certs.errors import CertError

__all__ = [
    "DEFAULT_KEY_TYPE",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "describe_key",
    "generate_key",
    "key_to_pem",
    "load_key_pem",
    "parse_key_type",
]

KeyType: TypeAlias = Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
DEFAULT_KEY_TYPE: KeyType = "ecdsa-p256"
KEY_TYPES: tuple[str, ...] = get_args(KeyType)


def parse_key_type(value: str, *, field: str = "key_type") -> KeyType:
    """Validate a user-supplied key type; the error names the field and the accepted values."""
    v = value.strip().lower()
    if v not in KEY_TYPES:
        raise CertError(f"{field}: unsupported key type {value!r}; use one of {', '.join(KEY_TYPES)}")
    return cast(KeyType, v)


def generate_key(key_type: KeyType = DEFAULT_KEY_TYPE) -> PrivateKey:
    """Generate a fresh private key (slow for RSA: keep it off the admission path, see KeyPool)."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise CertError(f"key_type: unsupported key type {key_type!r}")


def key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS8 PEM (what Pipy, OpenSSL and Go's tls.X509KeyPair all accept)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key_pem(pem: bytes, *, field: str = "key") -> PrivateKey:
    """Parse a PEM private key (PKCS8, PKCS1 or SEC1); the error never echoes the key bytes."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"{field}: not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError(f"{field}: unsupported key algorithm {type(key).__name__}; use ECDSA or RSA")
    return key


def describe_key(key: PrivateKey | PublicKey | object) -> str:
    """'ECDSA P-256' / 'RSA 2048' for display in `certs show`."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__
