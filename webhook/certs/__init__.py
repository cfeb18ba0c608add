"""Certificates for fsm-onboard: mesh CA, webhook serving cert, proxy bootstrap and service certs.

Interfaces the rest of `webhook/` uses (import from the submodule; this package imports nothing
heavy so `import webhook.certs` never pulls in `kubernetes`):

Local process (``serve --standalone``)
    files.ensure_cert_dir(cert_dir, hosts, *, key_type=, validity=, ca_validity=) -> CertFiles(ca, cert, key)
        create-or-reuse ca.crt/ca.key + tls.crt/tls.key (keys 0600, atomic writes); re-issues the
        leaf alone when only the leaf is stale.
    files.CertDirRenewer(cert_dir, hosts).start(interval) / .stop()   renew the files in place
    reload.server_ssl_context(cert, key, *, min_version=TLSv1_2, client_ca=None) -> ssl.SSLContext
    reload.CertReloader(ctx, cert, key, *, client_ca=None).start(interval=1.0) / .check() / .stop()
        new handshakes on `ctx` (e.g. uvicorn's `config.ssl` after `config.load()`) use the newest
        files; a mismatched or broken pair keeps the previous certificate.

Issuing (pure, in memory)
    ca.CA.generate(*, common_name=, key_type="ecdsa-p256", validity=) / CA.from_pem(cert_pem, key_pem)
    pool.KeyPool(size=64, key_type="ecdsa-p256").start() / .take() -> private key / .stop()
        .take() never generates in the caller's thread unless the pool is empty (counted in
        .stats()["pool_misses"]).
    issuer.Issuer(ca, key_pool, trust_domain="cluster.local", bundle=None)
        .issue_bootstrap(uuid, service_account, namespace) -> IssuedCert
            CN <uuid>.sidecar.<sa>.<ns>.<trust-domain>, client+server auth
        .issue_service(sa, ns, validity=timedelta(hours=24)) -> IssuedCert   (jittered expiry)
        .issue_serving(hosts, validity=) -> IssuedCert
        IssuedCert: cert_pem, key_pem, ca_pem (the whole trust bundle), common_name, not_after
        issuer.bootstrap_secret_data(issued) -> {"repo_cert.pem", "repo_key.pem", "cacert.pem"} (bytes)
    bundle.Bundle.from_pem(pem) / .add(cert) / .remove(fingerprint) / .pem   trust bundle for rotation
    service.ServiceCertCache(issuer, validity=)  .get(sa, ns) -> IssuedCert renewed before expiry

API server (the only module importing `kubernetes`: kube.py)
    kube.ensure_ca_secret(api: CoreV1Api, namespace, *, name="fsm-ca-bundle", key_type=, validity=,
        byo=None) -> CA          create-if-absent; 409 -> read back, so replicas agree on one CA
    kube.ensure_ca_state(...) / kube.read_ca_state(api, ns) -> CAState (signing CA, rotation, .trust Bundle)
    kube.load_ca_from_secret(api, ns, name) -> CA          bring-your-own CA from a Secret
    kube.patch_webhook_ca_bundle(admission_api, bundle_pem, *, mutating=[...], validating=[...])
    kube.create_secret(api, ns, name, data, *, labels=, request_timeout=)   bootstrap Secret, bounded
    kube.rotate_ca(core, admission, ns, step, *, issuer, ...) -> RotationReport   (`certs rotate-ca`)
    manager.MeshCertManager(core, admission, ns, *, cert_dir, hosts, key_pool, mutating=, validating=)
        .start_sync() -> Issuer; .start(interval) / .stop()   follows the CA Secret (rotation), renews
        the serving cert in cert_dir (pair it with CertReloader), keeps the caBundle in step
    rotate.CAState / begin / switch / finish / abort      the rotation as a pure state machine

CLI (wired by webhook/cli.py)
    cli.add_certs_commands(subparsers)   adds `certs show` and `certs rotate-ca`
    show.certs_show(cert_dir=None, *, kubeconfig=None, namespace=None) -> str

Errors: errors.CertError (message names the field or file and the reason; never key material).
"""
