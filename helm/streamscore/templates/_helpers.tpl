{{/*
Names, labels, the rendered properties files and the checks every template relies on.
*/}}

{{- define "streamscore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name when it already contains the chart name. */}}
{{- define "streamscore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: the full name for the primary, "<fullname>-shadow". */}}
{{- define "streamscore.componentName" -}}
{{- $full := include "streamscore.fullname" .root -}}
{{- if eq .component "primary" -}}{{ $full }}{{- else -}}{{ printf "%s-%s" $full .component }}{{- end -}}
{{- end -}}

{{- define "streamscore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamscore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamscore.labels" -}}
helm.sh/chart: {{ include "streamscore.chart" . }}
{{ include "streamscore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of one component's objects; argument: dict root, component. */}}
{{- define "streamscore.componentLabels" -}}
{{ include "streamscore.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streamscore.componentSelectorLabels" -}}
{{ include "streamscore.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streamscore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamscore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streamscore.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A properties value as text: integral numbers without exponent, the rest as is. */}}
{{- define "streamscore.value" -}}
{{- $v := . -}}
{{- if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- int64 $v -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* Name of the ConfigMap holding a component's model; argument: dict root, component, model. */}}
{{- define "streamscore.modelConfigMapName" -}}
{{- if .model.configMap.name -}}
{{- .model.configMap.name -}}
{{- else -}}
{{- printf "%s-model" (include "streamscore.componentName" .) -}}
{{- end -}}
{{- end -}}

{{/* Where the primary pods mount the rollout's candidate model (rollout.candidate). */}}
{{- define "streamscore.candidateMountPath" -}}
/models/candidate
{{- end -}}

{{/* The model card's file name inside the model's folder: model.card, or the worker's default. */}}
{{- define "streamscore.modelCardFile" -}}
{{- default (regexReplaceAll "\\.(json|ubj)$" .file ".card.json") .card -}}
{{- end -}}

{{/* model.path of a component; argument: the model values. */}}
{{- define "streamscore.modelPath" -}}
{{- if eq .source "image" -}}
{{- .path -}}
{{- else -}}
{{- printf "%s/%s" (trimSuffix "/" .mountPath) .file -}}
{{- end -}}
{{- end -}}

{{/*
The keys the chart sets from a mounted TLS Secret as a JSON dict: the CA file's key (ca), and
the client certificate's and key's (cert, key) with mutual TLS, each pointing into mountPath,
and the key switching TLS on (enable = true), if any; empty without a Secret. Argument: dict
tls (secrets.*Tls), ca, cert, key, enable (key names).
*/}}
{{- define "streamscore.tlsLocations" -}}
{{- $out := dict -}}
{{- with .tls -}}
{{- if .secretName -}}
{{- $dir := trimSuffix "/" .mountPath -}}
{{- $_ := set $out $.ca (printf "%s/%s" $dir .caKey) -}}
{{- if .certKey -}}
{{- $_ = set $out $.cert (printf "%s/%s" $dir .certKey) -}}
{{- $_ = set $out $.key (printf "%s/%s" $dir .keyKey) -}}
{{- end -}}
{{- with $.enable -}}{{- $_ = set $out . true -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The effective properties of a component as a dict (key -> value); argument: dict root,
component. The shadow's are the primary's config without its rollout.* keys (a shadow runs no
rollout) merged with shadow.config; the chart adds mode, model.path, model.card,
metrics.listen, the TLS files of Kafka, the Schema Registry and Redis (with redis.tls = true)
and, for the primary, rollout.topic "<fullname>-rollout" with rollout.enabled unless config
names one, and the score API's keys with scoreApi.enabled.
*/}}
{{- define "streamscore.configDict" -}}
{{- $v := .root.Values -}}
{{- $cfg := deepCopy $v.config -}}
{{- $model := $v.model -}}
{{- if eq .component "shadow" -}}
{{- range $k := keys $cfg -}}
{{- if hasPrefix "rollout." $k -}}{{- $_ := unset $cfg $k -}}{{- end -}}
{{- end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy $v.shadow.config) -}}
{{- $model = $v.shadow.model -}}
{{- else if and $v.rollout.enabled (not (get $cfg "rollout.topic")) -}}
{{- $_ := set $cfg "rollout.topic" (printf "%s-rollout" (include "streamscore.fullname" .root)) -}}
{{- end -}}
{{- $_ := set $cfg "mode" .component -}}
{{- $_ = set $cfg "model.path" (include "streamscore.modelPath" $model) -}}
{{- if and (ne $model.source "image") $model.card -}}
{{- $_ = set $cfg "model.card" (printf "%s/%s" (trimSuffix "/" $model.mountPath) $model.card) -}}
{{- end -}}
{{- $_ = set $cfg "metrics.listen" (printf "0.0.0.0:%d" (int $v.metrics.port)) -}}
{{- $cfg = mergeOverwrite $cfg (include "streamscore.tlsLocations" (dict "tls" $v.secrets.kafkaTls "ca" "kafka.ssl.ca.location" "cert" "kafka.ssl.certificate.location" "key" "kafka.ssl.key.location") | fromJson) -}}
{{- $cfg = mergeOverwrite $cfg (include "streamscore.tlsLocations" (dict "tls" $v.secrets.schemaRegistryTls "ca" "schema.registry.ssl.ca.location" "cert" "schema.registry.ssl.certificate.location" "key" "schema.registry.ssl.key.location") | fromJson) -}}
{{- $cfg = mergeOverwrite $cfg (include "streamscore.tlsLocations" (dict "tls" $v.secrets.redisTls "ca" "redis.tls.ca.file" "cert" "redis.tls.cert.file" "key" "redis.tls.key.file" "enable" "redis.tls") | fromJson) -}}
{{- $cfg = mergeOverwrite $cfg (include "streamscore.scoreApiConfig" . | fromJson) -}}
{{- toJson $cfg -}}
{{- end -}}

{{/*
The score API's keys as a JSON dict: for the primary with scoreApi.enabled, score.listen on
scoreApi.port, score.threads, score.max.connections and, with scoreApi.tls.secretName, the
mounted TLS files; empty for the shadow (a shadow refuses score.listen) and when disabled.
The token is no key here: STREAMSCORE_SCORE_TOKEN. Argument: dict root, component.
*/}}
{{- define "streamscore.scoreApiConfig" -}}
{{- $s := .root.Values.scoreApi -}}
{{- $out := dict -}}
{{- if and $s.enabled (eq .component "primary") -}}
{{- $_ := set $out "score.listen" (printf "0.0.0.0:%d" (int $s.port)) -}}
{{- $_ = set $out "score.threads" (int $s.threads) -}}
{{- $_ = set $out "score.max.connections" (int $s.maxConnections) -}}
{{- with $s.tls -}}
{{- if .secretName -}}
{{- $dir := trimSuffix "/" .mountPath -}}
{{- $_ = set $out "score.tls.cert.file" (printf "%s/%s" $dir .certKey) -}}
{{- $_ = set $out "score.tls.key.file" (printf "%s/%s" $dir .keyKey) -}}
{{- with .clientCaKey -}}
{{- $_ = set $out "score.tls.client.ca.file" (printf "%s/%s" $dir .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* streamscore.properties of a component; argument: dict root, component. */}}
{{- define "streamscore.properties" -}}
{{- $cfg := include "streamscore.configDict" . | fromJson -}}
# streamscore.properties of the {{ .component }} worker, rendered by the streamscore chart
# from its values (config{{ if eq .component "shadow" }} merged with shadow.config{{ end }}).
# Secrets come from environment variables (STREAMSCORE_<KEY>), never from this file.
{{- range $k := keys $cfg | sortAlpha }}
{{ $k }} = {{ include "streamscore.value" (get $cfg $k) }}
{{- end }}
{{ end -}}

{{/* The consumer group of a component's config dict. */}}
{{- define "streamscore.groupOf" -}}
{{- $cfg := .cfg -}}
{{- coalesce (get $cfg "kafka.consumer.group.id") (get $cfg "kafka.group.id") (ternary "streamscore" "streamscore-shadow" (eq .component "primary")) -}}
{{- end -}}

{{/*
Largest replica count of the autoscalers: min(autoscaling.maxReplicas, partitions / threads)
(maxReplicas 0: no limit of its own), at least 1.
*/}}
{{- define "streamscore.partitionCap" -}}
{{- $threads := int (default 1 (get .Values.config "worker.threads")) -}}
{{- max 1 (div (int .Values.input.partitions) $threads) -}}
{{- end -}}

{{- define "streamscore.maxReplicas" -}}
{{- $cap := int (include "streamscore.partitionCap" .) -}}
{{- $max := int .Values.autoscaling.maxReplicas -}}
{{- if and (gt $max 0) (lt $max $cap) -}}{{ $max }}{{- else -}}{{ $cap }}{{- end -}}
{{- end -}}

{{/* A model source's own checks; argument: dict model, where (the values path). */}}
{{- define "streamscore.checkModel" -}}
{{- $m := .model -}}
{{- if eq $m.source "configMap" -}}
{{- range $f := list $m.file $m.card -}}
{{- if and $f (not (regexMatch "^[-._a-zA-Z0-9]+$" $f)) -}}
{{- fail (printf "%s: %s is a ConfigMap key: letters, digits, '-', '_' and '.' only (no folder)" $.where $f) -}}
{{- end -}}
{{- end -}}
{{- if and (not $m.configMap.name) (not $m.configMap.model) -}}
{{- fail (printf "%s.source is configMap: set %s.configMap.name (an existing ConfigMap) or the model's content with --set-file %s.configMap.model=FILE" .where .where .where) -}}
{{- end -}}
{{- else if eq $m.source "volume" -}}
{{- if not $m.volume -}}
{{- fail (printf "%s.source is volume: set %s.volume to a volume source, e.g. {persistentVolumeClaim: {claimName: models, readOnly: true}}" .where .where) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Schema Registry's Secrets need its URL: a component with secrets.schemaRegistryAuth or
secrets.schemaRegistryTls but no schema.registry.url would never use them, and with
schemaRegistryTls the URL must be https://. Argument: the root context.
*/}}
{{- define "streamscore.checkRegistry" -}}
{{- $sr := .Values.secrets -}}
{{- $used := list -}}
{{- if $sr.schemaRegistryAuth.name -}}{{- $used = append $used "secrets.schemaRegistryAuth" -}}{{- end -}}
{{- if $sr.schemaRegistryTls.secretName -}}{{- $used = append $used "secrets.schemaRegistryTls" -}}{{- end -}}
{{- if $used -}}
{{- $components := list "primary" -}}
{{- if .Values.shadow.enabled -}}{{- $components = append $components "shadow" -}}{{- end -}}
{{- $urls := 0 -}}
{{- range $c := $components -}}
{{- $url := toString (default "" (get (include "streamscore.configDict" (dict "root" $ "component" $c) | fromJson) "schema.registry.url")) -}}
{{- if $url -}}
{{- $urls = add1 $urls -}}
{{- if and $sr.schemaRegistryTls.secretName (not (hasPrefix "https://" $url)) -}}
{{- fail (printf "secrets.schemaRegistryTls is set, but the %s's schema.registry.url (%s) is not https://: its TLS files would go unused" $c $url) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $urls 0 -}}
{{- fail (printf "%s set, but no schema.registry.url: set config.\"schema.registry.url\" (e.g. https://schema-registry:8081)" (join " and " $used)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A secret's `.file` key (key) in config (where) holds no secret, but the worker must not get
the secret (secret) from a variable too: from secrets.* (from) or extraEnv. Argument: dict
root, where, key, secret, from.
*/}}
{{- define "streamscore.checkSecretFile" -}}
{{- $v := .root.Values -}}
{{- $env := printf "STREAMSCORE_%s" (upper (replace "." "_" .secret)) -}}
{{- if and .from (get $v.secrets (trimPrefix "secrets." .from)).name -}}
{{- fail (printf "%s: key %s and %s both give %s: set one" .where .key .from .secret) -}}
{{- end -}}
{{- range $v.extraEnv -}}
{{- if eq (toString (get . "name")) $env -}}
{{- fail (printf "%s: key %s and extraEnv %s both give %s: set one" $.where $.key $env $.secret) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The mounted TLS Secrets as a JSON list of [values path of the mountPath, folder]: secrets.*Tls
with a secretName, and scoreApi.tls when the primary serves the score API over HTTPS.
Argument: the root context.
*/}}
{{- define "streamscore.tlsMountDirs" -}}
{{- $mounts := list -}}
{{- range $tls := list "kafkaTls" "schemaRegistryTls" "redisTls" -}}
{{- with get $.Values.secrets $tls -}}
{{- if .secretName -}}{{- $mounts = append $mounts (list (printf "secrets.%s.mountPath" $tls) (trimSuffix "/" .mountPath)) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.scoreApi.enabled .Values.scoreApi.tls.secretName -}}
{{- $mounts = append $mounts (list "scoreApi.tls.mountPath" (trimSuffix "/" .Values.scoreApi.tls.mountPath)) -}}
{{- end -}}
{{- toJson $mounts -}}
{{- end -}}

{{/* The mounted TLS Secrets are in separate folders, neither inside another. Argument: the root context. */}}
{{- define "streamscore.checkTlsMounts" -}}
{{- $mounts := include "streamscore.tlsMountDirs" . | fromJsonArray -}}
{{- range $i, $a := $mounts -}}
{{- range $b := slice $mounts (add1 $i) -}}
{{- $adir := index $a 1 -}}
{{- $bdir := index $b 1 -}}
{{- if or (eq $adir $bdir) (hasPrefix (printf "%s/" $adir) $bdir) (hasPrefix (printf "%s/" $bdir) $adir) -}}
{{- fail (printf "%s (%s) and %s (%s) must be separate folders, neither inside the other" (index $b 0) $bdir (index $a 0) $adir) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Rollout control is the primary's: shadow.config sets no rollout.* key, config no rollout.topic
without rollout.enabled; with it, the candidate's source is complete and its mount is a folder
of its own (not inside the model's or a TLS Secret's, nor holding one). Argument: the root
context.
*/}}
{{- define "streamscore.checkRollout" -}}
{{- $v := .Values -}}
{{- range $k := keys $v.shadow.config | sortAlpha -}}
{{- if hasPrefix "rollout." $k -}}
{{- fail (printf "shadow.config: key %s: a shadow runs no rollout (rollout.* keys go in config, for the primary)" $k) -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.rollout.enabled) (get $v.config "rollout.topic") -}}
{{- fail "config: key rollout.topic is set, but rollout.enabled is false: set rollout.enabled (the chart then mounts the candidate and creates the rollout alerts) or remove the key" -}}
{{- end -}}
{{- $c := $v.rollout.candidate -}}
{{- if and $v.rollout.enabled (ne $c.source "none") -}}
{{- include "streamscore.checkModel" (dict "model" $c "where" "rollout.candidate") -}}
{{- $dir := include "streamscore.candidateMountPath" . -}}
{{- $others := include "streamscore.tlsMountDirs" . | fromJsonArray -}}
{{- if ne $v.model.source "image" -}}{{- $others = prepend $others (list "model.mountPath" (trimSuffix "/" $v.model.mountPath)) -}}{{- end -}}
{{- range $others -}}
{{- $odir := index . 1 -}}
{{- if or (eq $odir $dir) (hasPrefix (printf "%s/" $odir) $dir) (hasPrefix (printf "%s/" $dir) $odir) -}}
{{- fail (printf "rollout.candidate is mounted at %s: %s (%s) must be a separate folder, neither inside the other" $dir (index . 0) $odir) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
secrets.redisTlsKeyPassword is the passphrase of a client key: some Deployment must have one
(redis.tls.key.file, from secrets.redisTls or config). Argument: the root context.
*/}}
{{- define "streamscore.checkRedisKeyPassword" -}}
{{- if .Values.secrets.redisTlsKeyPassword.name -}}
{{- $components := ternary (list "primary" "shadow") (list "primary") .Values.shadow.enabled -}}
{{- $keys := 0 -}}
{{- range $c := $components -}}
{{- if get (include "streamscore.configDict" (dict "root" $ "component" $c) | fromJson) "redis.tls.key.file" -}}
{{- $keys = add1 $keys -}}
{{- end -}}
{{- end -}}
{{- if eq $keys 0 -}}
{{- fail "secrets.redisTlsKeyPassword is set, but no Deployment has a client key (redis.tls.key.file): set secrets.redisTls.certKey and keyKey, or redis.tls.cert.file and redis.tls.key.file in config" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The score API is the primary's and its settings are scoreApi's: no STREAMSCORE_SCORE_* in
extraEnv (it reaches the shadow too, which refuses score.listen), a port of its own, and
none of its Secrets or its Service without scoreApi.enabled. Argument: the root context.
*/}}
{{- define "streamscore.checkScoreApi" -}}
{{- $v := .Values -}}
{{- $s := $v.scoreApi -}}
{{- range $v.extraEnv -}}
{{- $name := toString (get . "name") -}}
{{- if hasPrefix "STREAMSCORE_SCORE_" $name -}}
{{- fail (printf "extraEnv: %s: the score API's settings come from scoreApi (scoreApi.token for the token); extraEnv reaches the shadow too, which serves no scores" $name) -}}
{{- end -}}
{{- end -}}
{{- if $s.enabled -}}
{{- if eq (int $s.port) (int $v.metrics.port) -}}
{{- fail (printf "scoreApi.port (%d) is metrics.port: the score API needs a port of its own" (int $s.port)) -}}
{{- end -}}
{{- else -}}
{{- $unused := list -}}
{{- if $s.token.name -}}{{- $unused = append $unused "scoreApi.token.name" -}}{{- end -}}
{{- if $s.tls.secretName -}}{{- $unused = append $unused "scoreApi.tls.secretName" -}}{{- end -}}
{{- if $s.service.enabled -}}{{- $unused = append $unused "scoreApi.service.enabled" -}}{{- end -}}
{{- if $unused -}}
{{- fail (printf "%s set, but scoreApi.enabled is false: set scoreApi.enabled (the primary then serves the score API) or remove them" (join " and " $unused)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Checks of values the schema cannot express; fails rendering with a message naming the value. */}}
{{- define "streamscore.validate" -}}
{{- $v := .Values -}}
{{- $reserved := dict "mode" "it is the component's (primary, or shadow for the shadow Deployment)" "model.path" "set model (or shadow.model) instead" "model.card" "set model.card (or shadow.model.card) instead" "metrics.listen" "the chart sets 0.0.0.0:<metrics.port>" -}}
{{- /* the score API's keys and the values that set them (for the primary only) */ -}}
{{- $scoreFrom := dict "score.listen" "scoreApi.enabled and scoreApi.port" "score.threads" "scoreApi.threads" "score.max.connections" "scoreApi.maxConnections" "score.token" "scoreApi.token, a Secret" "score.token.file" "scoreApi.token, a Secret" "score.tls.cert.file" "scoreApi.tls" "score.tls.key.file" "scoreApi.tls" "score.tls.client.ca.file" "scoreApi.tls" -}}
{{- /* keys holding a secret, and the values that set them; any other key that names a
     password, a secret, a private key in PEM or OAuth settings: extraEnv */ -}}
{{- $secretFrom := dict "kafka.sasl.password" "secrets.kafkaSaslPassword" "redis.password" "secrets.redisPassword" "redis.tls.key.password" "secrets.redisTlsKeyPassword" "schema.registry.basic.auth.user.info" "secrets.schemaRegistryAuth" -}}
{{- /* the worker's secret keys: `<key>.file` names a file holding the secret */ -}}
{{- $fileSecrets := list "redis.password" "redis.tls.key.password" "schema.registry.basic.auth.user.info" "schema.registry.ssl.key.password" -}}
{{- /* the mounted TLS Secrets and the keys the chart sets from them (a pattern) */ -}}
{{- $tlsKeys := dict "kafkaTls" "^kafka\\.ssl\\..*\\.location$" "schemaRegistryTls" "^schema\\.registry\\.ssl\\..*\\.location$" "redisTls" "^redis\\.tls\\.(ca|cert|key)\\.file$" -}}
{{- range $where, $cfg := dict "config" $v.config "shadow.config" $v.shadow.config -}}
{{- range $k, $val := $cfg -}}
{{- if hasKey $reserved $k -}}
{{- fail (printf "%s: key %s is set by the chart: %s" $where $k (get $reserved $k)) -}}
{{- end -}}
{{- if hasPrefix "score." $k -}}
{{- fail (printf "%s: key %s is set by the chart from %s (the score API is the primary's; a shadow serves none)" $where $k (default "scoreApi" (get $scoreFrom $k))) -}}
{{- end -}}
{{- $fileOf := ternary (trimSuffix ".file" $k) "" (and (hasSuffix ".file" $k) (has (trimSuffix ".file" $k) $fileSecrets)) -}}
{{- if $fileOf -}}
{{- include "streamscore.checkSecretFile" (dict "root" $ "where" $where "key" $k "secret" $fileOf "from" (get $secretFrom $fileOf)) -}}
{{- else if or (hasKey $secretFrom $k) (regexMatch "password|secret|key\\.pem$|oauthbearer\\.config$" $k) -}}
{{- $env := printf "STREAMSCORE_%s" (upper (replace "." "_" $k)) -}}
{{- fail (printf "%s: key %s holds a secret: set it from a Secret (%s)" $where $k (default (printf "extraEnv: %s from a secretKeyRef" $env) (get $secretFrom $k))) -}}
{{- end -}}
{{- range $tls, $pattern := $tlsKeys -}}
{{- if and (get $v.secrets $tls).secretName (regexMatch $pattern $k) -}}
{{- fail (printf "%s: key %s is set by the chart from secrets.%s" $where $k $tls) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $k "redis.tls") $v.secrets.redisTls.secretName (ne (toString $val) "true") -}}
{{- fail (printf "%s: key redis.tls is %v, but secrets.redisTls is set (the chart sets redis.tls = true with its files)" $where $val) -}}
{{- end -}}
{{- if regexMatch "[\\n\\r]|\\\\$" (toString $val) -}}
{{- fail (printf "%s: the value of %s must be one line, not ending in a backslash" $where $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $tls, $_ := $tlsKeys -}}
{{- with get $v.secrets $tls -}}
{{- if and .secretName (ne (not .certKey) (not .keyKey)) -}}
{{- fail (printf "secrets.%s: set both certKey and keyKey (mutual TLS) or neither" $tls) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- include "streamscore.checkTlsMounts" . -}}
{{- include "streamscore.checkScoreApi" . -}}
{{- include "streamscore.checkRollout" . -}}
{{- include "streamscore.checkRedisKeyPassword" . -}}
{{- include "streamscore.checkRegistry" . -}}
{{- include "streamscore.checkModel" (dict "model" $v.model "where" "model") -}}
{{- if and $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled -}}
{{- fail "autoscaling: keda.enabled and hpa.enabled are both true; enable one autoscaler, never both" -}}
{{- end -}}
{{- if or $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled -}}
{{- $threads := int (default 1 (get $v.config "worker.threads")) -}}
{{- $max := int (include "streamscore.maxReplicas" .) -}}
{{- $min := int $v.autoscaling.minReplicas -}}
{{- if lt $max $min -}}
{{- fail (printf "autoscaling: the largest replica count is %d (min of autoscaling.maxReplicas = %d and input.partitions / worker.threads = %d / %d, rounded down, at least 1), below autoscaling.minReplicas = %d; lower minReplicas, or add partitions" $max (int $v.autoscaling.maxReplicas) (int $v.input.partitions) $threads $min) -}}
{{- end -}}
{{- if and $v.autoscaling.hpa.enabled (lt $min 1) -}}
{{- fail "autoscaling.minReplicas must be at least 1 with the HPA (only KEDA scales to zero)" -}}
{{- end -}}
{{- end -}}
{{- if $v.shadow.enabled -}}
{{- include "streamscore.checkModel" (dict "model" $v.shadow.model "where" "shadow.model") -}}
{{- $p := include "streamscore.configDict" (dict "root" . "component" "primary") | fromJson -}}
{{- $s := include "streamscore.configDict" (dict "root" . "component" "shadow") | fromJson -}}
{{- $pg := include "streamscore.groupOf" (dict "cfg" $p "component" "primary") -}}
{{- $sg := include "streamscore.groupOf" (dict "cfg" $s "component" "shadow") -}}
{{- if eq $pg $sg -}}
{{- fail (printf "shadow: its consumer group (%s) is the primary's; set shadow.config.\"kafka.group.id\" to a group of its own" $sg) -}}
{{- end -}}
{{- $pout := default "predictions" (get $p "output.topic") -}}
{{- $sout := default (printf "%s.shadow" (default "predictions" (get $s "output.topic"))) (get $s "shadow.topic") -}}
{{- if eq $pout $sout -}}
{{- fail (printf "shadow: shadow.topic (%s) is the primary's output.topic; set shadow.config.\"shadow.topic\" to a topic of its own" $sout) -}}
{{- end -}}
{{- $pdlq := default (printf "%s.dlq" (default "customer-events" (get $p "input.topic"))) (get $p "dlq.topic") -}}
{{- $sdlq := default (printf "%s.dlq" $sout) (get $s "dlq.topic") -}}
{{- if eq $pdlq $sdlq -}}
{{- fail (printf "shadow: its dlq.topic (%s) is the primary's; set shadow.config.\"dlq.topic\" to a topic of its own" $sdlq) -}}
{{- end -}}
{{- $ptx := get $p "delivery.transactional.id" -}}
{{- if and $ptx (eq (toString $ptx) (toString (get $s "delivery.transactional.id"))) -}}
{{- fail "shadow: its delivery.transactional.id is the primary's (it would fence the primary's producers); set shadow.config.\"delivery.transactional.id\"" -}}
{{- end -}}
{{- end -}}
{{- end -}}
