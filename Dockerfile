# syntax=docker/dockerfile:1
# fsm-onboard images (see docs/packaging.md):
#   docker build --target server -t flomesh/fsm-onboard:0.1.0 .       the webhook server (non-root)
#   docker build --target init   -t flomesh/fsm-onboard-init:0.1.0 .  fsm-init: iptables, nftables, eBPF (root)
# Network at build time: Debian's apt mirrors and PyPI only. Versions are pinned by constraints.txt.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- server-build: the package and its dependencies in a venv (no compiler needed: all wheels) ----
FROM ${PYTHON_IMAGE} AS server-build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/fsm-onboard
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY webhook ./webhook
COPY initcontainer ./initcontainer
COPY ebpf ./ebpf
COPY sidecar_templates ./sidecar_templates
RUN /opt/fsm-onboard/bin/pip install -c constraints.txt . \
 && /opt/fsm-onboard/bin/fsm-onboard --help >/dev/null

# ---- server: the admission webhook; runs as UID 65532, needs no capability ----
FROM ${PYTHON_IMAGE} AS server
COPY --from=server-build /opt/fsm-onboard /opt/fsm-onboard
ENV PATH=/opt/fsm-onboard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# No shell login, no home: the chart mounts the cert dir and /tmp as emptyDirs (read-only root).
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["fsm-onboard"]
CMD ["serve"]

# ---- init: fsm-init; root by design (it programs the pod's netfilter/BPF, see docs/packaging.md) ----
FROM ${DEBIAN_IMAGE} AS init
ARG DEBIAN_FRONTEND=noninteractive
# iptables/nftables: the redirect backends; iproute2: interfaces; python3-bpfcc + libbpfcc: BCC for
# --mode ebpf; linux-libc-dev: UAPI headers from which fsm-init builds a kernel header tree, so BCC
# works on nodes without linux-headers; bpftool: inspecting pinned maps. Same names as
# scripts/install-system-deps.sh (tests/chart/test_dockerfile.py checks).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv \
      iptables nftables iproute2 \
      python3-bpfcc libbpfcc linux-libc-dev bpftool \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY webhook ./webhook
COPY initcontainer ./initcontainer
COPY ebpf ./ebpf
COPY sidecar_templates ./sidecar_templates
COPY scripts/link-bcc.sh /usr/local/bin/link-bcc.sh
# Debian's python3 (3.11, the interpreter python3-bpfcc is built for) in a venv that links Debian's
# `bcc` module (pure Python over ctypes → libbcc) and nothing else of dist-packages.
RUN python3 -m venv /opt/fsm-onboard \
 && /opt/fsm-onboard/bin/pip install -c constraints.txt . \
 && link-bcc.sh /opt/fsm-onboard \
 && /opt/fsm-onboard/bin/python -c 'import bcc, ebpf.loader, initcontainer.cli' \
 && /opt/fsm-onboard/bin/fsm-init --help >/dev/null \
 && rm -rf /src
WORKDIR /
ENV PATH=/opt/fsm-onboard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FSM_BPF_HEADER_CACHE=/var/cache/fsm-onboard/bpf-headers
RUN mkdir -p /var/cache/fsm-onboard/bpf-headers
USER 0:0
ENTRYPOINT ["fsm-init"]
