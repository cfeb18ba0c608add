#!/usr/bin/env bash
# Installs the Debian packages fsm-onboard's tests and tools need (idempotent: skips what is there).
# iptables/nftables: fsm-init backends; bpfcc: eBPF redirection; linux-libc-dev: UAPI headers for the
# BPF header tree; iproute2: network namespaces in tests; openssl: chain checks in tests.
set -euo pipefail
pkgs=(iptables nftables iproute2 python3-bpfcc bpfcc-tools libbpfcc bpftool linux-libc-dev openssl curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
