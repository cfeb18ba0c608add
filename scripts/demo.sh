#!/usr/bin/env bash
# make demo: a real local control plane (etcd, kube-apiserver, kube-controller-manager on loopback),
# the fsm-onboard webhook registered with it, namespace `bookstore` onboarded, the bookstore demo
# applied, and what the API server stored for each pod. `make demo-down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.dev/demo
kubeconfig=.dev/kubeconfig
py=.venv/bin/python
fsm=.venv/bin/fsm-onboard

if [ "${1:-}" = down ]; then
  if [ -f "$state/serve.pid" ]; then
    kill "$(cat "$state/serve.pid")" 2>/dev/null || true
  fi
  [ -x "$py" ] && dev/cluster down || true
  rm -rf "$state"
  echo "demo: stopped"
  exit 0
fi

mkdir -p "$state"
dev/cluster up
if [ -f "$state/serve.pid" ] && kill -0 "$(cat "$state/serve.pid")" 2>/dev/null; then
  port=$(cat "$state/port")
  echo "demo: webhook already running on 127.0.0.1:$port"
else
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" >"$state/port"
  "$fsm" serve --kubeconfig "$kubeconfig" --host 127.0.0.1 --port "$port" \
    --webhook-url "https://127.0.0.1:$port" --cert-dir "$state/certs" --log-level info >"$state/serve.log" 2>&1 &
  echo $! >"$state/serve.pid"
fi
"$py" - "$port" "$state/certs/ca.crt" <<'PY'
import ssl, sys, time
import httpx
port, ca = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 60
while True:
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as c:
            if c.get(f"https://127.0.0.1:{port}/readyz").status_code == 200:
                break
    except (OSError, httpx.HTTPError):
        pass
    if time.monotonic() > deadline:
        sys.exit("demo: the webhook did not become ready; see .dev/demo/serve.log")
    time.sleep(0.2)
print(f"demo: webhook ready on https://127.0.0.1:{port} (registered as MutatingWebhookConfiguration fsm-webhook-fsm)")
PY
"$py" -m dev.apply --kubeconfig "$kubeconfig" -f /dev/stdin <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: bookstore}
YAML
"$fsm" namespace add bookstore --enable-metrics --kubeconfig "$kubeconfig"
"$py" -m dev.apply --kubeconfig "$kubeconfig" -f demo/bookstore.yaml
"$py" - "$kubeconfig" <<'PY'
import sys, time
from webhook.kube.client import connect, path_for
kube = connect(sys.argv[1])
want = 3  # bookstore x2, bookbuyer x1
deadline = time.monotonic() + 60
while True:
    pods = kube.get(path_for("v1", "pods", "bookstore"))["items"]
    if len(pods) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(f"\n== pods stored by the API server in namespace bookstore ({len(pods)}; Pending: there is no kubelet)")
for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
    spec, meta = p["spec"], p["metadata"]
    print(f"   {meta['name']}")
    print(f"      initContainers: {[c['name'] for c in spec.get('initContainers', [])]}")
    print(f"      containers:     {[c['name'] for c in spec['containers']]}")
    print(f"      fsm-proxy-uuid: {meta.get('labels', {}).get('fsm-proxy-uuid', '-')}")
secrets = [s["metadata"]["name"] for s in kube.get(path_for("v1", "secrets", "bookstore"))["items"]
           if s["metadata"]["name"].startswith("sidecar-bootstrap-config-")]
print(f"\n== bootstrap Secrets: {len(secrets)}")
for s in sorted(secrets):
    print(f"   {s}")
if len(pods) < want or any(not any(c["name"] == "sidecar" for c in p["spec"]["containers"]) for p in pods):
    sys.exit("demo: not every pod was injected; see .dev/demo/serve.log")
PY
# What fsm-init would program for one stored pod, in a throw-away network namespace standing in for it.
args=$("$py" - "$kubeconfig" <<'PY'
import shlex, sys
from webhook.kube.client import connect, path_for
pods = connect(sys.argv[1]).get(path_for("v1", "pods", "bookstore"))["items"]
init = next(c for p in pods for c in p["spec"].get("initContainers", []) if c["name"] == "fsm-init")
print(shlex.join(init["args"]))
PY
)
if [ "$(id -u)" = 0 ] && ip netns add fsm-demo-pod 2>/dev/null; then
  echo
  echo "== fsm-init $args --dry-run   (in a fresh network namespace standing in for the pod; IPv4 part)"
  # shellcheck disable=SC2086
  ip netns exec fsm-demo-pod .venv/bin/fsm-init $args --ipv6 false --dry-run 2>/dev/null | sed 's/^/   /' || true
  ip netns del fsm-demo-pod
fi
echo
echo "demo: running. Try: KUBECONFIG=$kubeconfig .venv/bin/fsm-onboard namespace list"
echo "      explain offline: .venv/bin/fsm-onboard explain -f demo/bookstore.yaml"
echo "      stop everything: make demo-down"
