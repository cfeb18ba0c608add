#!/usr/bin/env bash
# make demo: the standalone HTTPS webhook on loopback, a real AdmissionReview of the bookstore pod
# sent to it, and offline injection of the whole bookstore demo app.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.dev/demo
bin=.venv/bin
if [ "${1:-}" = down ]; then
  [ -f "$state/serve.pid" ] && kill "$(cat "$state/serve.pid")" 2>/dev/null || true
  rm -rf "$state"
  echo "demo: stopped"
  exit 0
fi
mkdir -p "$state"
port=${FSM_ONBOARD_DEMO_PORT:-19443}
"$bin/fsm-onboard" serve --standalone --host 127.0.0.1 --port "$port" --cert-dir "$state/certs" >"$state/serve.log" 2>&1 &
echo $! >"$state/serve.pid"
trap '"$0" down >/dev/null' EXIT
"$bin/python" - "$port" "$state/certs/ca.crt" <<'PY'
import base64, json, socket, ssl, sys, time
import httpx, yaml
port, ca = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 20
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("demo: the webhook did not start; see .dev/demo/serve.log")
        time.sleep(0.1)
docs = list(yaml.safe_load_all(open("demo/bookstore.yaml")))
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {**dep["spec"]["template"]["metadata"], "generateName": "bookstore-",
                    "annotations": {"flomesh.io/sidecar-injection": "enabled"}},
       "spec": dep["spec"]["template"]["spec"]}
review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
          "request": {"uid": "demo-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                      "namespace": "bookstore", "operation": "CREATE", "object": pod}}
with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as c:
    t0 = time.perf_counter()
    resp = c.post(f"https://127.0.0.1:{port}/mutate-pod-creation", json=review).json()["response"]
    ms = (time.perf_counter() - t0) * 1000
patch = json.loads(base64.b64decode(resp["patch"]))
print(f"== AdmissionReview over HTTPS (TLS 1.2+) to https://127.0.0.1:{port}/mutate-pod-creation: "
      f"allowed={resp['allowed']}, {len(patch)} JSONPatch operations, {ms:.1f} ms")
for op in patch:
    value = op.get("value")
    summary = value.get("name") if isinstance(value, dict) and "name" in value else ""
    print(f"   {op['op']:7} {op['path']} {summary}")
PY
echo
echo "== fsm-onboard explain -f demo/bookstore.yaml"
"$bin/fsm-onboard" explain -f demo/bookstore.yaml
echo
echo "== fsm-onboard inject -f demo/bookstore.yaml: containers of each injected Deployment"
"$bin/fsm-onboard" inject -f demo/bookstore.yaml --no-secrets | "$bin/python" -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d["kind"] == "Deployment":
        s = d["spec"]["template"]["spec"]
        print(f"   {d['"'"'metadata'"'"']['"'"'name'"'"']}: initContainers={[c['"'"'name'"'"'] for c in s['"'"'initContainers'"'"']]} containers={[c['"'"'name'"'"'] for c in s['"'"'containers'"'"']]}")
'
echo
echo "demo: done (full injected YAML: .venv/bin/fsm-onboard inject -f demo/bookstore.yaml)"
