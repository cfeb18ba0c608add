"""`fsm-onboard certs show|rotate-ca`. The lead's webhook/cli.py calls `add_certs_commands`; each
leaf parser sets `func(args) -> int` (0 ok, 2 bad input or refused step)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from webhook.certs.ca import CA, DEFAULT_CA_VALIDITY
from webhook.certs.errors import CertError
from webhook.certs.keys import KEY_TYPES, parse_key_type

__all__ = ["add_certs_commands", "main"]

STEPS = ("status", "begin", "switch", "finish", "abort")


def _validity(text: str) -> timedelta:
    from webhook.certs.issuer import parse_duration

    try:
        return parse_duration(text, field="--validity")
    except CertError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def add_certs_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `certs` with `show` and `rotate-ca` to an argparse subparsers object."""
    certs = subparsers.add_parser("certs", help="inspect certificates and rotate the mesh CA")
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="{show,rotate-ca}")

    show = sub.add_parser("show", help="CA and serving cert: subjects, SANs, key type, expiry")
    show.add_argument("--cert-dir", type=Path, help="a local cert dir (ca.crt, tls.crt)")
    show.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    show.add_argument("--namespace", "-n", help="mesh namespace holding the CA Secret")
    show.add_argument("--secret", default="fsm-ca-bundle", help="CA Secret name (default fsm-ca-bundle)")
    show.set_defaults(func=_cmd_show)

    rot = sub.add_parser(
        "rotate-ca",
        help="rotate the mesh CA in steps: begin → switch → finish (status shows where it stands)",
        description="Rotate the mesh CA without a moment of distrust; see docs/certs.md.",
    )
    rot.add_argument("step", choices=STEPS)
    rot.add_argument("--kubeconfig")
    rot.add_argument("--namespace", "-n", default="fsm-system", help="mesh namespace (default fsm-system)")
    rot.add_argument("--secret", default="fsm-ca-bundle")
    rot.add_argument("--key-type", default="ecdsa-p256", help=f"new CA key: {', '.join(KEY_TYPES)}")
    rot.add_argument(
        "--validity", type=_validity, default=DEFAULT_CA_VALIDITY, help="new CA validity, e.g. 87600h"
    )
    rot.add_argument("--ca-cert", type=Path, help="bring your own new CA: PEM certificate file")
    rot.add_argument("--ca-key", type=Path, help="bring your own new CA: PEM private key file")
    rot.add_argument("--mutating", action="append", default=[], metavar="NAME",
                     help="MutatingWebhookConfiguration whose caBundle follows the CA (repeatable)")  # fmt: skip
    rot.add_argument("--validating", action="append", default=[], metavar="NAME",
                     help="ValidatingWebhookConfiguration whose caBundle follows the CA (repeatable)")  # fmt: skip
    rot.add_argument("--mesh-name", default="fsm",
                     help="the mesh whose webhook configuration (fsm-webhook-<mesh>) follows the CA "
                          "when no --mutating is given")  # fmt: skip
    rot.add_argument("--trust-domain", default="cluster.local")
    rot.add_argument("--force", action="store_true", help="skip the check that old proxies were restarted")
    rot.set_defaults(func=_cmd_rotate)
    return certs


def _cmd_show(args: argparse.Namespace) -> int:
    from webhook.certs.show import certs_show

    try:
        print(
            certs_show(
                args.cert_dir, kubeconfig=args.kubeconfig, namespace=args.namespace, secret=args.secret
            )
        )
    except CertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    from webhook.certs import kube
    from webhook.certs.issuer import Issuer
    from webhook.certs.pool import KeyPool

    try:
        key_type = parse_key_type(args.key_type, field="--key-type")
        new_ca = None
        if bool(args.ca_cert) != bool(args.ca_key):
            raise CertError("--ca-cert and --ca-key: give both or neither")
        if args.ca_cert:
            if args.step != "begin":
                raise CertError("--ca-cert: only meaningful with the `begin` step")
            try:
                new_ca = CA.from_pem(
                    args.ca_cert.read_bytes(), args.ca_key.read_bytes(), source=str(args.ca_cert)
                )
            except OSError as exc:
                raise CertError(f"--ca-cert/--ca-key: {exc.filename}: {exc.strerror}") from None
        core, adm = kube.apis_from_kubeconfig(args.kubeconfig)
        found = kube.read_ca_state(core, args.namespace, args.secret)
        if found is None:
            raise CertError(f"Secret {args.namespace}/{args.secret}: not found; start the webhook once first")
        with KeyPool(size=16) as pool:
            issuer = Issuer(found[0].signing, pool, args.trust_domain, bundle=found[0].trust)
            report = kube.rotate_ca(
                core,
                adm,
                args.namespace,
                args.step,
                issuer=issuer,
                secret_name=args.secret,
                new_ca=new_ca,
                key_type=key_type,
                validity=args.validity,
                mutating=args.mutating or [f"fsm-webhook-{args.mesh_name}"],
                validating=args.validating,
                force=args.force,
            )
    except CertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m webhook.certs.cli certs show ...`) until the lead wires it in."""
    parser = argparse.ArgumentParser(prog="fsm-onboard")
    add_certs_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
