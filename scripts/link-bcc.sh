#!/usr/bin/env bash
# Makes Debian's BCC Python bindings (python3-bpfcc, pure Python over ctypes) importable from the venv
# without exposing the rest of Debian's dist-packages.
set -euo pipefail
venv=${1:-.venv}
src=/usr/lib/python3/dist-packages/bcc
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -d "$src" ]; then
  echo "link-bcc: $src not found (install python3-bpfcc: scripts/install-system-deps.sh)" >&2
  exit 1
fi
ln -sfn "$src" "$site/bcc"
