"""``fsm-onboard``: serve the webhook, inject or explain manifests offline, manage namespaces and certs.

Every user error ends as one line on stderr and exit code 2 (1 for a failed operation); never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from webhook import constants as c
from webhook.inject import Context, Templates, load_templates
from webhook.inject.templates import TemplateError
from webhook.meshconfig import MeshConfig, MeshConfigError, load_mesh_config

__all__ = ["main"]

log = logging.getLogger("fsm_onboard")


class UsageError(Exception):
    """A bad argument or input file: printed as ``fsm-onboard: error: ...``, exit 2."""


def _mesh_config(path: str | None) -> MeshConfig:
    if not path:
        return MeshConfig()
    try:
        return load_mesh_config(path)
    except FileNotFoundError:
        raise UsageError(f"--mesh-config: {path}: no such file") from None
    except MeshConfigError as exc:
        raise UsageError(f"--mesh-config {path}: {exc}") from None


def _templates(path: str | None) -> Templates:
    if path and not Path(path).is_dir():
        raise UsageError(f"--template-dir: {path}: not a directory")
    try:
        return load_templates(path)
    except TemplateError as exc:
        raise UsageError(f"--template-dir: {exc}") from None


def _context(args: argparse.Namespace, config: MeshConfig) -> Context:
    repo = config.spec.repoServer
    return Context(
        mesh_name=args.mesh_name,
        mesh_namespace=args.mesh_namespace,
        trust_domain=args.trust_domain,
        repo_host=repo.ipaddr,
        repo_port=repo.port,
        repo_tls=repo.tls,
    )


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise UsageError(f"-f: {path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise UsageError(f"-f: {path}: cannot read: {exc}") from None


def _namespace_file(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--namespace-file: {path}: no such file") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--namespace-file: {path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Namespace":
        raise UsageError(f"--namespace-file: {path}: expected a Namespace object")
    return doc


def cmd_inject(args: argparse.Namespace) -> int:
    from webhook.offline import ManifestError, inject_documents, load_documents

    config = _mesh_config(args.mesh_config)
    try:
        docs = load_documents(_read_input(args.filename))
        out, warnings = inject_documents(
            docs,
            config,
            _templates(args.template_dir),
            _context(args, config),
            namespace=_namespace_file(args.namespace_file),
            default_ns=args.namespace,
            with_secrets=not args.no_secrets,
        )
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    for warning in warnings:
        print(f"fsm-onboard: {warning}", file=sys.stderr)
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, default_flow_style=False))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from webhook.offline import ManifestError, explain_documents, load_documents

    config = _mesh_config(args.mesh_config)
    try:
        results = explain_documents(
            load_documents(_read_input(args.filename)),
            config,
            _templates(args.template_dir),
            _context(args, config),
            namespace=_namespace_file(args.namespace_file),
            default_ns=args.namespace,
        )
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    for label, outcome in results:
        d = outcome.decision
        verdict = "DENIED" if d.denied else ("INJECT" if outcome.rendered else "SKIP")
        print(f"{label}: {verdict} [{d.reason.value}] {d.error or d.reason.sentence}")
        for warning in outcome.warnings:
            print(f"    warning: {warning}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from webhook.app import create_app
    from webhook.certs.errors import CertError
    from webhook.certs.files import CertDirRenewer, ensure_cert_dir
    from webhook.mutate import Mutator, standalone_namespace
    from webhook.server import TLSFiles, run_https

    config = _mesh_config(args.mesh_config)
    templates = _templates(args.template_dir)
    ctx = _context(args, config)
    cert_dir = Path(args.cert_dir)
    if not args.standalone:
        raise UsageError("serve: cluster mode needs --kubeconfig (not available yet); use --standalone")
    hosts = list(dict.fromkeys(["localhost", "127.0.0.1", *args.cert_host]))
    try:
        files = ensure_cert_dir(cert_dir, hosts)
    except CertError as exc:
        raise UsageError(f"--cert-dir: {exc}") from None
    renewer = CertDirRenewer(cert_dir, hosts)
    renewer.start(interval=60.0)
    mutator = Mutator(templates, ctx, standalone_namespace(args.mesh_name), lambda: config)
    print(
        f"fsm-onboard: serving https://{args.host}:{args.port}/mutate-pod-creation (standalone, mesh "
        f"{args.mesh_name!r}); CA {files.ca}",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_https(create_app(mutator), args.host, args.port, TLSFiles(files.cert, files.key), log_level=args.log_level)
    finally:
        renewer.stop()
    return 0


def _add_mesh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh-name", default=c.DEFAULT_MESH_NAME, help="mesh name (namespace label value)")
    p.add_argument("--mesh-namespace", default=c.DEFAULT_MESH_NAMESPACE, help="the mesh's own namespace")
    p.add_argument("--mesh-config", metavar="FILE", help="MeshConfig YAML/JSON (default: FSM's defaults)")
    p.add_argument("--template-dir", metavar="DIR", help="override sidecar_templates/*.yaml by file name")
    p.add_argument("--trust-domain", default=c.DEFAULT_TRUST_DOMAIN)


def _add_manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="manifest file, or - for stdin")
    p.add_argument("-n", "--namespace", default="default", help="namespace of objects that name none")
    p.add_argument(
        "--namespace-file",
        metavar="NS.yaml",
        help="the Namespace object to decide against (default: onboarded with injection enabled)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fsm-onboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the admission webhook over HTTPS")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=9090)
    serve.add_argument("--cert-dir", default=".fsm-onboard/certs", help="ca.crt, tls.crt, tls.key")
    serve.add_argument("--cert-host", action="append", default=[], help="extra SAN for the serving cert")
    serve.add_argument("--standalone", action="store_true", help="no cluster: every namespace is monitored")
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    _add_mesh_args(serve)
    serve.set_defaults(func=cmd_serve)

    inj = sub.add_parser("inject", help="inject the sidecar into manifests (YAML out on stdout)")
    _add_manifest_args(inj)
    _add_mesh_args(inj)
    inj.add_argument("--no-secrets", action="store_true", help="do not append the bootstrap Secrets")
    inj.set_defaults(func=cmd_inject)

    exp = sub.add_parser("explain", help="say for each pod or template whether it would be injected and why")
    _add_manifest_args(exp)
    _add_mesh_args(exp)
    exp.set_defaults(func=cmd_explain)

    for register in _optional_commands():
        register(sub)
    return parser


def _optional_commands() -> list[Callable[[Any], None]]:
    """Subcommand groups that live beside their code (certs, namespaces)."""
    out: list[Callable[[Any], None]] = []
    try:
        from webhook.certs.cli import add_certs_commands

        out.append(add_certs_commands)
    except ImportError:
        pass
    return out


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="fsm-onboard: %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "port", 1) is not None and not 1 <= getattr(args, "port", 1) <= 65535:
        parser.error(f"--port: expected 1-65535, got {args.port}")
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"fsm-onboard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"fsm-onboard: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
