{{/* Names and labels. */}}
{{- define "mmrlaif.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mmrlaif.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mmrlaif.mlflowSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mlflow
{{- end -}}

{{- define "mmrlaif.serviceAccountName" -}}
{{- default (include "mmrlaif.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "mmrlaif.mlflowName" -}}
{{- printf "%s-mlflow" (include "mmrlaif.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Images: <registry>/<name>:<tag>, the tag defaulting to the release (appVersion). */}}
{{- define "mmrlaif.image" -}}
{{- $v := .ctx.Values.image -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $v.registry) (get $v .role) (default .ctx.Chart.AppVersion $v.tag) -}}
{{- end -}}

{{/* The tracking URI the pipeline's pods use. */}}
{{- define "mmrlaif.mlflowUri" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "mmrlaif.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- else -}}
{{- required "mlflow.externalUri is required when mlflow.enabled is false" .Values.mlflow.externalUri -}}
{{- end -}}
{{- end -}}

{{- define "mmrlaif.s3Root" -}}
{{- printf "s3://%s/%s" (required "s3.bucket is required" .Values.s3.bucket) (trimAll "/" .Values.s3.prefix) | trimSuffix "/" -}}
{{- end -}}

{{/* S3 environment: endpoint, region and the keys from the existing Secret. */}}
{{- define "mmrlaif.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.secretAccessKeyKey }}
{{- with .Values.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
- name: MMRLAIF_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Resources for the pipeline config (requests/limits -> ResourcesConfig keys). */}}
{{- define "mmrlaif.taskResources" -}}
cpu_request: {{ .requests.cpu | quote }}
cpu_limit: {{ .limits.cpu | quote }}
memory_request: {{ .requests.memory | quote }}
memory_limit: {{ .limits.memory | quote }}
{{- end -}}

{{/* The OpenAI-compatible endpoint of a model server of the chart. */}}
{{- define "mmrlaif.serverUrl" -}}
{{- printf "http://%s-%s.%s.svc.cluster.local:%d/v1" (include "mmrlaif.fullname" .ctx) .role .ctx.Release.Namespace (int .ctx.Values.servers.port) -}}
{{- end -}}
