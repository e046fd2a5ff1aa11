{{/* The name every resource carries: the release name, or
release-chart when the release name does not contain the chart's. */}}
{{- define "sg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sg.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sg.labels" -}}
{{ include "sg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The governor's identity, as the admission policies name it. */}}
{{- define "sg.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "sg.fullname" . }}
{{- end -}}

{{/* One document of a multi-document file under files/, parsed:
(list $ "path" index). The chart reads the policy logic (webhook match
conditions, admission policies, RBAC rules, alerts) from the kustomize
files it links to, so both installs enforce the same thing. */}}
{{- define "sg.doc" -}}
{{- $root := index . 0 -}}
{{- $docs := regexSplit "(?m)^---$" ($root.Files.Get (index . 1)) -1 -}}
{{- index $docs (index . 2) | fromYaml | toJson -}}
{{- end -}}

{{- define "sg.policyAdmins" -}}
{{- join "," .Values.policyAdmins -}}
{{- end -}}
