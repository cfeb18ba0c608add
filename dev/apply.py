"""Create (or replace) the objects of a YAML manifest on the local control plane (no kubectl here).

Usage: .venv/bin/python -m dev.apply --kubeconfig FILE -f MANIFEST.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from webhook.kube.client import KubeError, connect, path_for

# kind → (plural, namespaced)
KINDS = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "DaemonSet": ("daemonsets", True),
    "Job": ("jobs", True),
    "MeshConfig": ("meshconfigs", True),
}


def apply(kubeconfig: str, manifest: Path) -> int:
    kube = connect(kubeconfig)
    for doc in yaml.safe_load_all(manifest.read_text()):
        if not doc:
            continue
        kind, meta = doc["kind"], doc["metadata"]
        if kind not in KINDS:
            print(f"apply: {kind} is not supported by dev/apply.py", file=sys.stderr)
            return 2
        plural, namespaced = KINDS[kind]
        ns = meta.get("namespace", "default") if namespaced else None
        collection = path_for(doc["apiVersion"], plural, ns)
        try:
            kube.create(collection, doc)
            verb = "created"
        except KubeError as exc:
            if not exc.conflict:
                print(f"apply: {kind} {meta['name']}: {exc}", file=sys.stderr)
                return 1
            current = kube.get(f"{collection}/{meta['name']}")
            doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            kube.replace(f"{collection}/{meta['name']}", doc)
            verb = "configured"
        print(f"{kind.lower()}/{meta['name']} {verb}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("-f", "--filename", required=True, type=Path)
    args = p.parse_args()
    return apply(args.kubeconfig, args.filename)


if __name__ == "__main__":
    sys.exit(main())
