"""Names FSM users already have in their clusters: labels, annotations, containers, ports, UIDs.

Everything here must stay byte-compatible with Flomesh Service Mesh so a cluster onboarded with FSM
keeps working when fsm-onboard takes over.
"""

from __future__ import annotations

ANNOTATION_PREFIX = "flomesh.io/"

# Namespace label / annotations deciding onboarding.
LABEL_MONITORED_BY = "flomesh.io/monitored-by"
LABEL_IGNORE = "flomesh.io/ignore"
ANN_SIDECAR_INJECTION = "flomesh.io/sidecar-injection"
ANN_METRICS = "flomesh.io/metrics"

# Pod / namespace annotations tuning the injected proxy.
ANN_SIDECAR_IMAGE = "flomesh.io/sidecar-image"
ANN_NATIVE_SIDECAR = "flomesh.io/native-sidecar"
ANN_HOLD_APP = "flomesh.io/hold-application-until-proxy-starts"
ANN_GRACEFUL_EXIT = "flomesh.io/graceful-exit-until-downstream-ends"
ANN_INTERCEPTION_MODE = "flomesh.io/interception-mode"
ANN_LOG_LEVEL = "flomesh.io/sidecar-log-level"
ANN_OUTBOUND_PORT_EXCLUSION = "flomesh.io/outbound-port-exclusion-list"
ANN_INBOUND_PORT_EXCLUSION = "flomesh.io/inbound-port-exclusion-list"
ANN_OUTBOUND_IP_EXCLUSION = "flomesh.io/outbound-ip-range-exclusion-list"
ANN_OUTBOUND_IP_INCLUSION = "flomesh.io/outbound-ip-range-inclusion-list"
ANN_RESOURCE_PREFIX = "flomesh.io/sidecar-resource-"
RESOURCE_KINDS = ("limits", "requests")
RESOURCE_NAMES = ("cpu", "memory", "storage", "ephemeral-storage")

# What the injector writes.
LABEL_PROXY_UUID = "fsm-proxy-uuid"
ANN_SIDECAR_STATUS = "flomesh.io/sidecar-status"
ANN_PROM_SCRAPE = "prometheus.io/scrape"
ANN_PROM_PORT = "prometheus.io/port"
ANN_PROM_PATH = "prometheus.io/path"
PROM_PATH = "/stats/prometheus"

SIDECAR_CONTAINER_NAME = "sidecar"
INIT_CONTAINER_NAME = "fsm-init"
BOOTSTRAP_VOLUME = "sidecar-bootstrap-config-volume"
BOOTSTRAP_SECRET_PREFIX = "sidecar-bootstrap-config-"
BOOTSTRAP_MOUNT_PATH = "/etc/pipy"

PROXY_UID = 1500
PORT_PROXY_ADMIN = 15000
PORT_OUTBOUND = 15001
PORT_INBOUND = 15003
PORT_METRICS = 15010
PORT_LIVENESS = 15901
PORT_READINESS = 15902
PORT_STARTUP = 15903
PORT_TCP_HEALTHCHECK = 15904
PORT_REPO = 6060
PIPY_ADMIN_PORT = 6060

HEALTHCHECK_PATH = "/fsm-healthcheck"
HEADER_ORIGINAL_HTTP_PORT = "Original-Http-Port"
HEADER_ORIGINAL_HTTP_PATH = "Original-Http-Path"
HEADER_ORIGINAL_TCP_PORT = "Original-Tcp-Port"

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public"})
DEFAULT_MESH_NAME = "fsm"
DEFAULT_MESH_NAMESPACE = "fsm-system"
DEFAULT_TRUST_DOMAIN = "cluster.local"
MESH_CONFIG_NAME = "fsm-mesh-config"

# Values FSM accepts for the boolean-ish injection annotations (case-insensitive).
TRUE_VALUES = frozenset({"enabled", "yes", "true"})
FALSE_VALUES = frozenset({"disabled", "no", "false"})
