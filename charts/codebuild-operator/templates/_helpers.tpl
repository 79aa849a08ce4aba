{{/* The chart's name, or nameOverride. */}}
{{- define "codebuild-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else the release name alone when it already
contains the (overridden) chart name, else "<release>-<name>".
*/}}
{{- define "codebuild-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "codebuild-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codebuild-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "codebuild-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "codebuild-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "codebuild-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "codebuild-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: forced, or auto with more than one replica. */}}
{{- define "codebuild-operator.leaderElection" -}}
{{- $mode := .Values.leaderElection.enabled }}
{{- if and (kindIs "bool" $mode) (not $mode) (gt (int .Values.replicas) 1) }}
{{- fail "leaderElection.enabled=false with replicas > 1 would let every replica start builds: use leaderElection.enabled=auto (or true), or replicas=1" }}
{{- end }}
{{- if kindIs "bool" $mode }}
{{- ternary "true" "false" $mode }}
{{- else }}
{{- ternary "true" "false" (gt (int .Values.replicas) 1) }}
{{- end }}
{{- end }}

{{- define "codebuild-operator.leaseName" -}}
{{- default (printf "%s-leader" (include "codebuild-operator.fullname" .)) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The RBAC rules on CodeBuildRuns, CodeBuildBatchRuns and Events: exactly the calls the
operator makes. */}}
{{- define "codebuild-operator.rules" -}}
# Watch cache (list, watch), reads (get), patches of the object (patch: the claim, a merge
# patch adding the finalizer and the start-attempt annotation; the JSON patch releasing the
# finalizer) and ttlSecondsAfterFinished (delete).
- apiGroups: ["codebuild.operator.dev"]
  resources: ["codebuildruns", "codebuildbatchruns"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Status: server-side apply on the status subresource.
- apiGroups: ["codebuild.operator.dev"]
  resources: ["codebuildruns/status", "codebuildbatchruns/status"]
  verbs: ["get", "patch"]
# Finalizers: clusters with the OwnerReferencesPermissionEnforcement admission plugin
# (OpenShift, some hardened clusters) require update on this subresource to set them.
- apiGroups: ["codebuild.operator.dev"]
  resources: ["codebuildruns/finalizers", "codebuildbatchruns/finalizers"]
  verbs: ["update"]
# kube-runtime's Recorder: creates an Event, then patches it when the same one repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "codebuild-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- /* The ValidatingAdmissionPolicy the operator keeps in step with the policies. */ -}}
{{- define "codebuild-operator.admissionPolicyName" -}}
{{- printf "%s-policy" (include "codebuild-operator.fullname" .) }}
{{- end }}

{{- define "codebuild-operator.admissionEnabled" -}}
{{- if and .Values.policy.enforce .Values.policy.admission.enabled }}true{{ end }}
{{- end }}

{{- /*
The pod's and the container's securityContext. A value missing altogether (an upgrade with
--reuse-values from a chart without these values, which reuses the old chart's defaults)
gives the same restricted default as values.yaml, never none.
*/ -}}
{{- define "codebuild-operator.podSecurityContext" -}}
{{- if hasKey .Values "podSecurityContext" }}
{{- toYaml .Values.podSecurityContext }}
{{- else -}}
runAsGroup: 65532
runAsNonRoot: true
runAsUser: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end }}

{{- define "codebuild-operator.securityContext" -}}
{{- if hasKey .Values "securityContext" }}
{{- toYaml .Values.securityContext }}
{{- else -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
  - ALL
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end }}

{{- /* podLabels, refused when they would replace one of the chart's own labels. */ -}}
{{- define "codebuild-operator.podLabels" -}}
{{- $own := include "codebuild-operator.labels" . | fromYaml }}
{{- range $key, $_ := .Values.podLabels }}
{{- if hasKey $own $key }}
{{- fail (printf "podLabels may not set %s: the chart sets it (and the selector depends on it)" $key) }}
{{- end }}
{{- end }}
{{- with .Values.podLabels }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- /*
The pod's affinity: the user's when set; else, with more than one replica, a preferred
anti-affinity spreading the replicas over nodes (preferred, so a one-node cluster still
schedules them all).
*/ -}}
{{- define "codebuild-operator.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if gt (int .Values.replicas) 1 -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "codebuild-operator.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end }}

{{- /* topologySpreadConstraints; one without labelSelector selects the operator's pods. */ -}}
{{- define "codebuild-operator.topologySpreadConstraints" -}}
{{- $selector := include "codebuild-operator.selectorLabels" . | fromYaml }}
{{- range $i, $c := .Values.topologySpreadConstraints }}
{{- if $i }}{{ "\n" }}{{ end }}
{{- if not (hasKey $c "labelSelector") }}
{{- $c = set (deepCopy $c) "labelSelector" (dict "matchLabels" $selector) }}
{{- end -}}
- {{ toYaml $c | indent 2 | trim }}
{{- end }}
{{- end }}

{{- /* "true" with aggregatedRoles.enabled (absent after a --reuse-values upgrade: off). */ -}}
{{- define "codebuild-operator.aggregatedRolesEnabled" -}}
{{- if (.Values.aggregatedRoles | default dict).enabled }}true{{ end }}
{{- end }}

{{- /*
The Kubernetes floor. Checked here rather than by Chart.yaml's kubeVersion, which Helm checks
before rendering with a message that names only a version: `helm template`, `helm lint` and
--dry-run=client ask no cluster and render for a version built into Helm (v1.20.0 in builds
from source, older minors in older releases), and the user should learn that, and the flag.
*/ -}}
{{- define "codebuild-operator.minKubeVersion" -}}1.33.0{{- end }}

{{- define "codebuild-operator.checkKubeVersion" -}}
{{- $floor := include "codebuild-operator.minKubeVersion" . }}
{{- $version := .Capabilities.KubeVersion.Version }}
{{- if semverCompare (printf "<%s-0" $floor) $version }}
{{- fail (printf "codebuild-operator needs Kubernetes %s or newer, but this render is for Kubernetes %s. `helm template`, `helm lint` and `--dry-run=client` ask no cluster for its version and use one built into Helm: pass your cluster's, e.g. `--kube-version %s`. (`helm install` and `helm upgrade` use the cluster's own version.)" $floor $version $floor) }}
{{- end }}
{{- end }}
