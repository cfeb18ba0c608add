"""``fsm-onboard``: serve the webhook, inject or explain manifests offline, manage namespaces and certs.

Every user error ends as one line on stderr and exit code 2 (1 for a failed operation); never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from webhook import constants as c
from webhook.certs.cli import add_certs_commands
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

    templates = _templates(args.template_dir)
    if not args.standalone:
        return _serve_cluster(args, templates)
    config = _mesh_config(args.mesh_config)
    ctx = _context(args, config)
    cert_dir = Path(args.cert_dir)
    hosts = list(dict.fromkeys(["localhost", "127.0.0.1", *args.cert_host]))
    key_type, ca_validity = _key_settings(args)
    try:
        files = ensure_cert_dir(cert_dir, hosts, key_type=key_type, ca_validity=ca_validity)
    except CertError as exc:
        raise UsageError(f"--cert-dir: {exc}") from None
    renewer = CertDirRenewer(cert_dir, hosts, key_type=key_type, ca_validity=ca_validity)
    renewer.start(interval=60.0)
    mutator = Mutator(templates, ctx, standalone_namespace(args.mesh_name), lambda: config)
    print(
        f"fsm-onboard: serving https://{args.host}:{args.port}/mutate-pod-creation (standalone, mesh "
        f"{args.mesh_name!r}); CA {files.ca}",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_https(
            create_app(mutator),
            args.host,
            args.port,
            TLSFiles(files.cert, files.key),
            log_level=args.log_level,
        )
    finally:
        renewer.stop()
    return 0


def _serve_cluster(args: argparse.Namespace, templates: Templates) -> int:
    from webhook.app import create_app
    from webhook.certs.errors import CertError
    from webhook.cluster import ClusterOptions, ClusterServer
    from webhook.kube.client import KubeError, connect
    from webhook.kube.webhookconfig import WebhookSettings
    from webhook.server import TLSFiles, run_https

    if args.mesh_config:
        raise UsageError(
            "--mesh-config: in cluster mode the MeshConfig is the fsm-mesh-config object; "
            "use it with --standalone, inject or explain"
        )
    try:
        kube = connect(args.kubeconfig)
        owner = _cluster_role_owner(kube, args.owner_cluster_role) if args.owner_cluster_role else ()
        webhook = WebhookSettings(
            mesh_name=args.mesh_name,
            mesh_namespace=args.mesh_namespace,
            url=args.webhook_url or "",
            service_name=args.service_name,
            failure_policy=args.failure_policy,
            timeout_seconds=args.webhook_timeout,
            owner=owner,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except KubeError as exc:
        print(f"fsm-onboard: error: cannot start in cluster mode: {exc}", file=sys.stderr)
        return 1
    key_type, ca_validity = _key_settings(args)
    options = ClusterOptions(
        byo_ca=_byo_ca(args.ca_cert, args.ca_key),
        key_type=key_type,
        ca_validity=ca_validity,
        mesh_name=args.mesh_name,
        mesh_namespace=args.mesh_namespace,
        cert_dir=Path(args.cert_dir),
        cert_hosts=args.cert_host,
        webhook=webhook,
        trust_domain=args.trust_domain,
        service_cert_interval=args.service_cert_check_interval,
    )
    # Context from FSM's default repo settings; the live MeshConfig decides per admission.
    ctx = Context(
        mesh_name=args.mesh_name, mesh_namespace=args.mesh_namespace, trust_domain=args.trust_domain
    )
    try:
        cluster = ClusterServer(kube, options, templates, ctx)
        cluster.start()
    except (KubeError, CertError) as exc:
        print(f"fsm-onboard: error: cannot start in cluster mode: {exc}", file=sys.stderr)
        return 1
    cert, key = cluster.tls_files
    print(
        f"fsm-onboard: serving https://{args.host}:{args.port}/mutate-pod-creation for mesh {args.mesh_name!r} "
        f"(API server {kube.server}); webhook {webhook.url or webhook.service_name}",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_https(
            create_app(cluster.mutator, ready=cluster.ready),
            args.host,
            args.port,
            TLSFiles(cert, key),
            log_level=args.log_level,
            on_started=cluster.register,
        )
    finally:
        cluster.stop()
    return 0


def _key_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """--key-type and --ca-validity, checked with the certs package's own parsers."""
    from datetime import timedelta

    from webhook.certs.errors import CertError
    from webhook.certs.keys import parse_key_type
    from webhook.values import parse_duration

    try:
        key_type = parse_key_type(args.key_type, field="--key-type")
    except CertError as exc:
        raise UsageError(str(exc)) from None
    try:
        seconds = parse_duration(args.ca_validity)
    except ValueError as exc:
        raise UsageError(f"--ca-validity: {exc}") from None
    if seconds < 86400:
        raise UsageError(f"--ca-validity: expected at least 24h, got {args.ca_validity!r}")
    return key_type, timedelta(seconds=seconds)


def _byo_ca(cert: str | None, key: str | None) -> Any:
    """The bring-your-own mesh CA from --ca-cert/--ca-key, checked (a CA, key matches)."""
    from webhook.certs.ca import CA
    from webhook.certs.errors import CertError

    if not cert and not key:
        return None
    if not (cert and key):
        raise UsageError("--ca-cert and --ca-key: give both or neither")
    try:
        return CA.from_pem(Path(cert).read_bytes(), Path(key).read_bytes(), source=f"--ca-cert {cert}")
    except OSError as exc:
        raise UsageError(f"--ca-cert/--ca-key: {exc.filename}: {exc.strerror}") from None
    except CertError as exc:
        raise UsageError(str(exc)) from None


def _cluster_role_owner(kube: Any, name: str) -> tuple[tuple[str, str], ...]:
    """An ownerReference to the ClusterRole ``name`` (--owner-cluster-role)."""
    from webhook.kube.client import KubeError, path_for

    try:
        role = kube.get(path_for("rbac.authorization.k8s.io/v1", "clusterroles", name=name))
    except KubeError as exc:
        raise KubeError(exc.status, f"--owner-cluster-role {name}: {exc}") from None
    return (
        ("apiVersion", "rbac.authorization.k8s.io/v1"),
        ("kind", "ClusterRole"),
        ("name", name),
        ("uid", role["metadata"]["uid"]),
    )


def cmd_namespace(args: argparse.Namespace) -> int:
    from webhook.kube import namespaces
    from webhook.kube.client import KubeError, connect

    try:
        kube = connect(args.kubeconfig)
        if args.ns_command == "add":
            for name in args.names:
                print(
                    namespaces.add(
                        kube,
                        name,
                        args.mesh_name,
                        injection=not args.disable_sidecar_injection,
                        metrics=args.enable_metrics,
                    )
                )
        elif args.ns_command == "remove":
            for name in args.names:
                print(namespaces.remove(kube, name, args.mesh_name))
        else:
            print(namespaces.table(kube, None if args.all_meshes else args.mesh_name))
    except namespaces.NamespaceError as exc:
        print(f"fsm-onboard: error: {exc}", file=sys.stderr)
        return 1
    except KubeError as exc:
        print(f"fsm-onboard: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from webhook.kube.client import KubeError, connect
    from webhook.kube.webhookconfig import Registrar, WebhookSettings

    try:
        kube = connect(args.kubeconfig)
        settings = WebhookSettings(args.mesh_name, args.mesh_namespace)
        for registrar in (
            Registrar.mutating(kube, settings, bytes),
            Registrar.validating(kube, settings, bytes),
        ):
            registrar.delete()
            print(f"deleted {registrar.kind} {registrar.name} (if it existed)")
    except KubeError as exc:
        print(f"fsm-onboard: error: {exc}", file=sys.stderr)
        return 1
    print("Stop the fsm-onboard server first, or it registers them again. Pods keep their sidecars.")
    return 0


def _add_namespace_commands(sub: Any) -> None:
    ns = sub.add_parser("namespace", help="onboard namespaces into the mesh (like `fsm namespace`)")
    ns_sub = ns.add_subparsers(dest="ns_command", required=True, metavar="add|remove|list")
    add = ns_sub.add_parser("add", help="label and annotate namespaces for the mesh")
    add.add_argument("names", nargs="+", metavar="NS")
    add.add_argument("--disable-sidecar-injection", action="store_true")
    add.add_argument("--enable-metrics", action="store_true")
    remove = ns_sub.add_parser("remove", help="take namespaces out of the mesh")
    remove.add_argument("names", nargs="+", metavar="NS")
    lst = ns_sub.add_parser("list", help="namespaces in the mesh")
    lst.add_argument("--all-meshes", action="store_true")
    for p in (add, remove, lst):
        p.add_argument("--mesh-name", default=c.DEFAULT_MESH_NAME)
        p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config)")
    ns.set_defaults(func=cmd_namespace)


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
    serve.add_argument("--kubeconfig", help="cluster mode: kubeconfig file (default: in-cluster config)")
    serve.add_argument("--webhook-url", help="cluster mode, server outside the cluster: https://host:port")
    serve.add_argument(
        "--service-name", default="fsm-onboard-webhook", help="cluster mode: the webhook Service"
    )
    serve.add_argument("--failure-policy", default="Fail", help="Fail (default) or Ignore")
    serve.add_argument("--webhook-timeout", type=int, default=10, help="seconds, 1-30 (default 10)")
    serve.add_argument(
        "--key-type",
        default="ecdsa-p256",
        help="ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096",
    )
    serve.add_argument(
        "--ca-validity", default="87600h", help="validity of a generated mesh CA (default 87600h)"
    )
    serve.add_argument(
        "--ca-cert", metavar="FILE", help="cluster mode: bring your own mesh CA (PEM certificate)"
    )
    serve.add_argument("--ca-key", metavar="FILE", help="cluster mode: the BYO mesh CA's private key (PEM)")
    serve.add_argument(
        "--owner-cluster-role",
        metavar="NAME",
        help="cluster mode: the webhook configurations are owned by this ClusterRole (the chart's), so "
        "deleting it (helm uninstall) garbage-collects them",
    )
    serve.add_argument(
        "--service-cert-check-interval",
        type=float,
        default=30.0,
        help="seconds between service cert renewal checks",
    )
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

    _add_namespace_commands(sub)
    add_certs_commands(sub)
    uninstall = sub.add_parser(
        "uninstall", help="delete the webhook configurations the server registered (before `helm uninstall`)"
    )
    uninstall.add_argument("--mesh-name", default=c.DEFAULT_MESH_NAME)
    uninstall.add_argument("--mesh-namespace", default=c.DEFAULT_MESH_NAMESPACE)
    uninstall.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config)")
    uninstall.set_defaults(func=cmd_uninstall)
    return parser


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
