{{/* Labels on every object of the release. */}}
{{- define "legate.labels" -}}
app.kubernetes.io/name: legate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The labels that select the controller's pods. */}}
{{- define "legate.selectorLabels" -}}
app.kubernetes.io/name: legate
app.kubernetes.io/component: controller
{{- end }}

{{- define "legate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
