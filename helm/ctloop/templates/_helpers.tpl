{{/* Names: <release> when it already contains the chart name (the usual `helm install ctloop`), else
<release>-ctloop; every object is <fullname>-<component>. */}}
{{- define "ctloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ctloop.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: ctloop
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ctloop.labels" -}}
{{ include "ctloop.commonLabels" . }}
app.kubernetes.io/name: ctloop
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "drift-watcher"). */}}
{{- define "ctloop.selectorLabels" -}}
app.kubernetes.io/name: ctloop
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ctloop.componentLabels" -}}
{{ include "ctloop.commonLabels" .root }}
{{ include "ctloop.selectorLabels" . }}
{{- end -}}

{{- define "ctloop.image" -}}
{{- printf "%s/ctloop-%s:%s" .root.Values.image.registry .image (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* In-cluster URL of a component's Service (port 8080). */}}
{{- define "ctloop.serviceUrl" -}}
{{- printf "http://%s-%s.%s.svc.cluster.local:8080" (include "ctloop.fullname" .root) .component .root.Release.Namespace -}}
{{- end -}}

{{- define "ctloop.mlflowUrl" -}}
{{- printf "http://%s-mlflow.%s.svc.cluster.local:5000" (include "ctloop.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* ctloop.yaml: the user's settings with the keys the chart owns written over them. */}}
{{- define "ctloop.settings" -}}
{{- $settings := deepCopy .Values.settings -}}
{{- $endpoints := dict
      "watcher" (dict "url" (include "ctloop.serviceUrl" (dict "root" . "component" "drift-watcher")))
      "webhook" (dict "url" (include "ctloop.serviceUrl" (dict "root" . "component" "retrain-webhook")))
      "seldon" (dict "namespace" .Release.Namespace) -}}
{{- if .Values.mlflow.enabled -}}
{{- $_ := set $endpoints "mlflow" (dict "tracking_uri" (include "ctloop.mlflowUrl" .)) -}}
{{- end -}}
{{- if .Values.secrets.s3.endpointUrl -}}
{{- $_ := set $endpoints "artifact_store" (dict "s3_endpoint_url" .Values.secrets.s3.endpointUrl) -}}
{{- end -}}
{{- $_ := set $endpoints.watcher "token_secret" .Values.secrets.watcher.existingSecret -}}
{{- if .Values.pipelineDeploy.enabled -}}
{{- $_ := set $endpoints "kfp" (dict "service_account" .Values.pipelineDeploy.serviceAccount) -}}
{{- end -}}
{{- $owned := dict
      "mode" "kubernetes"
      "endpoints" $endpoints
      "pipeline" (dict "image_registry" .Values.image.registry "image_tag" (default .Chart.AppVersion .Values.image.tag)) -}}
{{- toYaml (mustMergeOverwrite $settings $owned) -}}
{{- end -}}

{{/* The pod-level security context and the /tmp volume every pod of the chart gets. */}}
{{- define "ctloop.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}
{{- define "ctloop.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}

{{/* Env shared by the services that talk to S3. */}}
{{- define "ctloop.s3Env" -}}
{{- if .Values.secrets.s3.endpointUrl }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ .Values.secrets.s3.endpointUrl | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ .Values.secrets.s3.endpointUrl | quote }}
{{- end }}
{{- end -}}

{{/*
A ctloop service: Deployment with the service contract's command, probes and port. Call with
(dict "root" $ "component" "drift-watcher" "module" "drift_watcher" "image" "watch" "values" .Values.driftWatcher
      "state" true "s3" true "webhookSecret" true "alertmanagerToken" false "ingestToken" true)
*/}}
{{- define "ctloop.deployment" -}}
{{- $root := .root -}}
{{- $fullname := include "ctloop.fullname" $root -}}
{{- $persistent := and .state .values.persistence .values.persistence.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ctloop.componentLabels" . | nindent 4 }}
spec:
  replicas: 1
  {{- if $persistent }}
  # A ReadWriteOnce claim cannot be mounted by the old and the new pod at once.
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "ctloop.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "ctloop.componentLabels" . | nindent 8 }}
      annotations:
        # Restart the pod when ctloop.yaml changes.
        checksum/config: {{ include "ctloop.settings" $root | sha256sum }}
        {{- with .values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}-{{ .component }}
      automountServiceAccountToken: {{ .kubeApi | default false }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "ctloop.podSecurityContext" $root | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "ctloop.image" (dict "root" $root "image" .image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - python
            - -m
            - ctloop.services.{{ .module }}
            - --config
            - /etc/ctloop/ctloop.yaml
            - --host
            - 0.0.0.0
            - --port
            - "8080"
            {{- if .state }}
            - --state
            - /var/lib/ctloop
            {{- end }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            {{- if .webhookSecret }}
            - name: CTLOOP_WEBHOOK_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.secrets.webhook.existingSecret }}
                  key: {{ $root.Values.secrets.webhook.secretKey }}
            {{- end }}
            {{- if .alertmanagerToken }}
            - name: CTLOOP_ALERTMANAGER_TOKEN
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.secrets.webhook.existingSecret }}
                  key: {{ $root.Values.secrets.webhook.alertmanagerTokenKey }}
            {{- end }}
            {{- if .ingestToken }}
            - name: CTLOOP_WATCHER_TOKEN
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.secrets.watcher.existingSecret }}
                  key: ingest-token
            {{- end }}
            {{- if .s3 }}
            {{- include "ctloop.s3Env" $root | nindent 12 }}
            {{- end }}
            {{- if .kfpToken }}
            - name: KF_PIPELINES_SA_TOKEN_PATH
              value: /var/run/secrets/kubeflow/pipelines/token
            {{- end }}
            - name: OMP_NUM_THREADS
              value: "1"
          {{- if and .s3 $root.Values.secrets.s3.existingSecret }}
          envFrom:
            - secretRef:
                name: {{ $root.Values.secrets.s3.existingSecret }}
          {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 5
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "ctloop.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/ctloop
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if .state }}
            - name: state
              mountPath: /var/lib/ctloop
            {{- end }}
            {{- if .kfpToken }}
            - name: kfp-token
              mountPath: /var/run/secrets/kubeflow/pipelines
              readOnly: true
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $fullname }}-config
        - name: tmp
          emptyDir: {}
        {{- if .state }}
        - name: state
          {{- if $persistent }}
          persistentVolumeClaim:
            claimName: {{ $fullname }}-{{ .component }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        {{- if .kfpToken }}
        # KFP's in-cluster credentials (kfp.client.ServiceAccountTokenVolumeCredentials): a short-lived token of
        # this ServiceAccount for KFP's API server, which checks it against the namespace's profile.
        - name: kfp-token
          projected:
            sources:
              - serviceAccountToken:
                  path: token
                  audience: pipelines.kubeflow.org
                  expirationSeconds: 7200
        {{- end }}
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ctloop.componentLabels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "ctloop.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
{{- if $root.Values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ctloop.componentLabels" . | nindent 4 }}
  {{- with $root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- if $persistent }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ctloop.componentLabels" . | nindent 4 }}
  annotations:
    # The queue and windows outlive an uninstall; delete the claim by hand to drop them.
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml .values.persistence.accessModes | nindent 4 }}
  {{- with .values.persistence.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ .values.persistence.size }}
{{- end }}
{{- end -}}
