"""`fsm-onboard certs show`: what CA and serving certificate are in use, and until when."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509

from webhook.certs.ca import fingerprint, load_certs_pem, utcnow
from webhook.certs.errors import CertError
from webhook.certs.files import CA_CERT, TLS_CERT
from webhook.certs.keys import describe_key
from webhook.certs.leaf import chains_to, renew_at, sans_of, subject_of

__all__ = ["certs_show", "describe_cert"]


def _when(t: datetime, now: datetime) -> str:
    days = (t - now).total_seconds() / 86400
    rel = f"in {days:.1f} days" if days >= 0 else f"EXPIRED {-days:.1f} days ago"
    return f"{t.strftime('%Y-%m-%d %H:%M:%SZ')} ({rel})"


def describe_cert(title: str, cert: x509.Certificate, *, issuers: list[x509.Certificate] | None = None,
                  now: datetime | None = None) -> list[str]:  # fmt: skip
    """Lines for one certificate: subject, SANs, key type, validity, issuer and chain status."""
    t = now or utcnow()
    lines = [f"{title}: {subject_of(cert)}"]
    sans = sans_of(cert)
    names = [f"DNS:{d}" for d in sans.dns] + [f"IP:{i}" for i in sans.ips]
    if names:
        lines.append(f"  SANs:     {', '.join(names)}")
    lines.append(f"  key:      {describe_key(cert.public_key())}")
    lines.append(f"  expires:  {_when(cert.not_valid_after_utc, t)}")
    if issuers is not None:
        lines.append(f"  renew at: {_when(renew_at(cert), t)}")
        ok = any(chains_to(cert, ca) for ca in issuers)
        lines.append(
            f"  issuer:   {cert.issuer.rfc4514_string()} ({'chain OK' if ok else 'NOT signed by the CA bundle'})"
        )
    lines.append(f"  sha256:   {fingerprint(cert)}")
    return lines


def _show_dir(cert_dir: Path) -> list[str]:
    ca_path, leaf_path = cert_dir / CA_CERT, cert_dir / TLS_CERT
    out: list[str] = [f"# {cert_dir}"]
    cas: list[x509.Certificate] = []
    if ca_path.exists():
        cas = load_certs_pem(ca_path.read_bytes(), field=str(ca_path))
        for i, ca in enumerate(cas):
            out += describe_cert(f"CA {i + 1}/{len(cas)}" if len(cas) > 1 else "CA", ca)
    else:
        out.append(f"CA: {ca_path} is missing")
    if leaf_path.exists():
        leaf = load_certs_pem(leaf_path.read_bytes(), field=str(leaf_path))[0]
        out += describe_cert("serving cert", leaf, issuers=cas)
    else:
        out.append(f"serving cert: {leaf_path} is missing")
    return out


def _show_cluster(kubeconfig: str | Path | None, namespace: str, secret: str) -> list[str]:
    from webhook.certs import kube  # imports `kubernetes`: only when asked about a cluster

    core, _ = kube.apis_from_kubeconfig(kubeconfig)
    found = kube.read_ca_state(core, namespace, secret)
    if found is None:
        return [f"# Secret {namespace}/{secret}", "no mesh CA yet (created when the webhook first starts)"]
    state = found[0]
    out = [f"# Secret {namespace}/{secret}", f"rotation phase: {state.phase}"]
    out += describe_cert("signing CA", state.signing.cert)
    if state.pending is not None:
        out += describe_cert("new CA (trusted, not signing yet)", state.pending.cert)
    if state.previous is not None:
        out += describe_cert("previous CA (still trusted)", state.previous)
    return out


def certs_show(
    cert_dir: str | Path | None = None,
    *,
    kubeconfig: str | Path | None = None,
    namespace: str | None = None,
    secret: str = "fsm-ca-bundle",
) -> str:
    """A readable report of the cert dir and/or the mesh CA Secret (`namespace` selects the latter)."""
    if cert_dir is None and namespace is None:
        raise CertError("certs show: give --cert-dir and/or --namespace (with --kubeconfig)")
    parts: list[str] = []
    if cert_dir is not None:
        d = Path(cert_dir)
        if not d.is_dir():
            raise CertError(f"cert_dir: {d} is not a directory")
        parts += _show_dir(d)
    if namespace is not None:
        parts += _show_cluster(kubeconfig, namespace, secret)
    return "\n".join(parts)
