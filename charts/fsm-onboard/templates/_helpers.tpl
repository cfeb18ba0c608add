{{/* Names fsm-onboard's code expects are fixed here; everything else follows the release. */}}

{{- define "fsm-onboard.name" -}}fsm-onboard{{- end -}}

{{/* The Service the server writes into its MutatingWebhookConfiguration (--service-name). */}}
{{- define "fsm-onboard.serviceName" -}}fsm-onboard-webhook{{- end -}}

{{/* Cluster-scoped RBAC objects carry the mesh name: two meshes in one cluster never collide. */}}
{{- define "fsm-onboard.clusterName" -}}fsm-onboard-{{ .Values.meshName }}{{- end -}}

{{- define "fsm-onboard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "fsm-onboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fsm-onboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fsm-onboard.labels" -}}
{{ include "fsm-onboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fsm
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
flomesh.io/mesh-name: {{ .Values.meshName }}
{{- end -}}
