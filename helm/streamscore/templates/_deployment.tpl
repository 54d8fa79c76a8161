{{/*
A worker Deployment; argument: dict root, component (primary | shadow). The primary and the
shadow differ in their properties, model, replicas and resources, and in the rollout's
candidate (rollout.candidate) and the score API (scoreApi: its port, token and TLS files),
the primary's only.
*/}}
{{- define "streamscore.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $shadow := eq .component "shadow" -}}
{{- $name := include "streamscore.componentName" . -}}
{{- $model := ternary $v.shadow.model $v.model $shadow -}}
{{- $resources := ternary (default $v.resources $v.shadow.resources) $v.resources $shadow -}}
{{- $autoscaled := and (not $shadow) (or $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled) -}}
{{- /* the candidate's source when the primary mounts it (configMap | volume), else empty */ -}}
{{- $candidate := ternary $v.rollout.candidate.source "" (and (not $shadow) $v.rollout.enabled (ne $v.rollout.candidate.source "none")) -}}
{{- $scoreApi := and (not $shadow) $v.scoreApi.enabled -}}
{{- /* STREAMSCORE_<KEY> variables from secrets.*, each [name, secretKey values], and the
  mounted TLS Secrets, each [volume name, secrets.*Tls]; the shadow gets the same. */ -}}
{{- $secretEnv := list -}}
{{- range $pair := list (list "STREAMSCORE_KAFKA_SASL_PASSWORD" $v.secrets.kafkaSaslPassword) (list "STREAMSCORE_REDIS_PASSWORD" $v.secrets.redisPassword) (list "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO" $v.secrets.schemaRegistryAuth) (list "STREAMSCORE_REDIS_TLS_KEY_PASSWORD" $v.secrets.redisTlsKeyPassword) -}}
{{- if (index $pair 1).name -}}{{- $secretEnv = append $secretEnv $pair -}}{{- end -}}
{{- end -}}
{{- $tlsMounts := list -}}
{{- range $pair := list (list "kafka-tls" $v.secrets.kafkaTls) (list "schema-registry-tls" $v.secrets.schemaRegistryTls) (list "redis-tls" $v.secrets.redisTls) -}}
{{- if (index $pair 1).secretName -}}{{- $tlsMounts = append $tlsMounts $pair -}}{{- end -}}
{{- end -}}
{{- /* the score API's token and TLS files: the primary's only */ -}}
{{- if and $scoreApi $v.scoreApi.token.name -}}
{{- $secretEnv = append $secretEnv (list "STREAMSCORE_SCORE_TOKEN" $v.scoreApi.token) -}}
{{- end -}}
{{- if and $scoreApi $v.scoreApi.tls.secretName -}}
{{- $tlsMounts = append $tlsMounts (list "score-tls" $v.scoreApi.tls) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "streamscore.componentLabels" . | nindent 4 }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ ternary $v.shadow.replicaCount $v.replicaCount $shadow }}
  {{- end }}
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      {{- include "streamscore.componentSelectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.strategy.maxSurge }}
      maxUnavailable: {{ $v.strategy.maxUnavailable }}
  template:
    metadata:
      labels:
        {{- include "streamscore.componentSelectorLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Rolls the pods when their properties change; the model's ConfigMap is left out:
        # the worker reloads a changed model file in place.
        checksum/config: {{ include "streamscore.properties" . | sha256sum }}
        {{- if $v.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.metrics.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "streamscore.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
      # Service links would add STREAMSCORE_* variables (from a Service named streamscore-*)
      # that the worker reads as configuration.
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: streamscore
          image: {{ include "streamscore.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: ["run", "-c", "/etc/streamscore/streamscore.properties"]
          ports:
            - name: metrics
              containerPort: {{ $v.metrics.port }}
              protocol: TCP
            {{- if $scoreApi }}
            - name: score
              containerPort: {{ $v.scoreApi.port }}
              protocol: TCP
            {{- end }}
          {{- if or $secretEnv $v.extraEnv }}
          env:
            {{- range $secretEnv }}
            - name: {{ index . 0 }}
              valueFrom:
                secretKeyRef:
                  name: {{ (index . 1).name }}
                  key: {{ (index . 1).key }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            {{- toYaml $v.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            {{- toYaml $v.readinessProbe | nindent 12 }}
          {{- with $resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/streamscore
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if ne $model.source "image" }}
            # The whole folder, never a subPath: a subPath mount would not see updates.
            - name: model
              mountPath: {{ $model.mountPath }}
              readOnly: true
            {{- end }}
            {{- if $candidate }}
            # The rollout's candidate: `streamscore rollout start --model` finds it here.
            - name: candidate
              mountPath: {{ include "streamscore.candidateMountPath" . }}
              readOnly: true
            {{- end }}
            {{- range $tlsMounts }}
            - name: {{ index . 0 }}
              mountPath: {{ (index . 1).mountPath }}
              readOnly: true
            {{- end }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $name }}-config
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
        {{- if eq $model.source "configMap" }}
        - name: model
          configMap:
            name: {{ include "streamscore.modelConfigMapName" (dict "root" $root "component" .component "model" $model) }}
        {{- else if eq $model.source "volume" }}
        - name: model
          {{- toYaml $model.volume | nindent 10 }}
        {{- end }}
        {{- if eq $candidate "configMap" }}
        - name: candidate
          configMap:
            name: {{ include "streamscore.modelConfigMapName" (dict "root" $root "component" "candidate" "model" $v.rollout.candidate) }}
        {{- else if eq $candidate "volume" }}
        - name: candidate
          {{- toYaml $v.rollout.candidate.volume | nindent 10 }}
        {{- end }}
        {{- range $tlsMounts }}
        - name: {{ index . 0 }}
          secret:
            secretName: {{ (index . 1).secretName }}
            # 0440: readable by the pod's group (fsGroup) only.
            defaultMode: 288
        {{- end }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
