{{/*
Expand the name of the chart.
*/}}
{{- define "alarmd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters because some
Kubernetes name fields are limited to that (by the DNS naming spec). A release
name that already contains the chart name is used as it is.
*/}}
{{- define "alarmd.fullname" -}}
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

{{/*
Chart name and version, as used by the chart label.
*/}}
{{- define "alarmd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "alarmd.labels" -}}
helm.sh/chart: {{ include "alarmd.chart" . }}
{{ include "alarmd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alarmd
{{- end }}

{{/*
Selector labels: stable across upgrades, so never the version.
*/}}
{{- define "alarmd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alarmd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The name of the service account to use.
*/}}
{{- define "alarmd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alarmd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: a digest wins over a tag; the tag defaults to appVersion.
*/}}
{{- define "alarmd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Where the optional email template overrides and the Kafka TLS material are
mounted inside the containers.
*/}}
{{- define "alarmd.templateDir" -}}/etc/alarmd/templates{{- end }}
{{- define "alarmd.kafkaTlsDir" -}}/etc/alarmd/kafka-tls{{- end }}
{{- define "alarmd.databaseTlsDir" -}}/etc/alarmd/db-tls{{- end }}

{{/*
The settings ConfigMap's data, also hashed into the checksum/config annotation.
*/}}
{{- define "alarmd.settings" -}}
ALARMD_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
{{- if and .Values.kafka.properties (not .Values.kafka.existingSecret.name) }}
ALARMD_KAFKA_PROPERTIES: {{ .Values.kafka.properties | toJson | quote }}
{{- end }}
{{- with .Values.kafka.securityProtocol }}
ALARMD_KAFKA_SECURITY_PROTOCOL: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.sasl.mechanism }}
ALARMD_KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.sasl.username }}
ALARMD_KAFKA_SASL_USERNAME: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.tls.caFile }}
ALARMD_KAFKA_SSL_CA_LOCATION: {{ printf "%s/%s" (include "alarmd.kafkaTlsDir" $) . | quote }}
{{- end }}
ALARMD_GROUP_ID: {{ .Values.settings.groupId | quote }}
ALARMD_INPUT_TOPIC: {{ .Values.settings.inputTopic | quote }}
ALARMD_TOPIC_PARTITIONS: {{ .Values.settings.inputPartitions | quote }}
ALARMD_EMAIL_ALARM_TYPES: {{ .Values.settings.emailAlarmTypes | toJson | quote }}
ALARMD_SHUTDOWN_DEADLINE_S: {{ .Values.settings.shutdownDeadlineSeconds | quote }}
ALARMD_LOG_LEVEL: {{ .Values.settings.logLevel | quote }}
ALARMD_LOG_FORMAT: "json"
ALARMD_HTTP_HOST: "0.0.0.0"
ALARMD_HTTP_PORT: {{ .Values.daemon.port | quote }}
ALARMD_NOTIFY_HTTP_PORT: {{ .Values.notifier.port | quote }}
ALARMD_NOTIFY_GROUP_ID: {{ .Values.notifier.groupId | quote }}
ALARMD_NOTIFY_FROM: {{ .Values.notifier.from | quote }}
ALARMD_NOTIFY_RECIPIENTS: {{ .Values.notifier.recipients | toJson | quote }}
ALARMD_NOTIFY_ROUTES: {{ .Values.notifier.routes | toJson | quote }}
ALARMD_SMTP_HOST: {{ .Values.notifier.smtp.host | quote }}
ALARMD_SMTP_PORT: {{ .Values.notifier.smtp.port | quote }}
ALARMD_SMTP_SECURITY: {{ .Values.notifier.smtp.security | quote }}
{{- if .Values.notifier.templates }}
ALARMD_NOTIFY_TEMPLATE_DIR: {{ include "alarmd.templateDir" . | quote }}
{{- end }}
{{- range $name, $value := .Values.settings.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Environment from Secrets, by reference only: the database URL, the SMTP
credentials and the librdkafka properties that hold SASL credentials.
*/}}
{{- define "alarmd.secretEnv" -}}
- name: ALARMD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret.name | quote }}
      key: {{ .Values.database.existingSecret.key | quote }}
{{- if .Values.kafka.existingSecret.name }}
- name: ALARMD_KAFKA_PROPERTIES
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.existingSecret.name | quote }}
      key: {{ .Values.kafka.existingSecret.key | quote }}
{{- end }}
{{- with .Values.kafka.sasl.existingSecret }}
{{- if .name }}
- name: ALARMD_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of the email sidecar from Secrets: the SMTP login and the webhook
URLs, which often carry a token.
*/}}
{{- define "alarmd.smtpSecretEnv" -}}
{{- with .Values.notifier.smtp.existingSecret }}
{{- if .name }}
- name: ALARMD_SMTP_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .usernameKey | quote }}
- name: ALARMD_SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .passwordKey | quote }}
{{- end }}
{{- end }}
{{- with .Values.notifier.webhooks.existingSecret }}
{{- if .name }}
- name: ALARMD_NOTIFY_WEBHOOKS
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The container securityContext every container of the chart gets.
*/}}
{{- define "alarmd.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
The metric selector the alert rules and the dashboard share.
*/}}
{{- define "alarmd.metricSelector" -}}
namespace="{{ .Release.Namespace }}",service="{{ include "alarmd.fullname" . }}"
{{- end }}

{{/*
Checks that values the schema cannot relate to each other fit together.
*/}}
{{- define "alarmd.validate" -}}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (addf .Values.settings.shutdownDeadlineSeconds 5) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed settings.shutdownDeadlineSeconds (%v) plus the 5 s watchdog, or Kubernetes kills the pod before alarmd finishes its batch" .Values.terminationGracePeriodSeconds .Values.settings.shutdownDeadlineSeconds) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) (int .Values.settings.inputPartitions)) }}
{{- fail (printf "autoscaling.maxReplicas (%v) exceeds settings.inputPartitions (%v); pods beyond the partition count of %s would sit idle" .Values.autoscaling.maxReplicas .Values.settings.inputPartitions .Values.settings.inputTopic) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%v) exceeds autoscaling.maxReplicas (%v)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- if and (not .Values.autoscaling.enabled) (gt (int .Values.replicaCount) (int .Values.settings.inputPartitions)) }}
{{- fail (printf "replicaCount (%v) exceeds settings.inputPartitions (%v); the extra pods would sit idle" .Values.replicaCount .Values.settings.inputPartitions) }}
{{- end }}
{{- if and .Values.notifier.enabled (eq (int .Values.daemon.port) (int .Values.notifier.port)) }}
{{- fail (printf "daemon.port and notifier.port are both %v; the two containers share the pod's network and need different ports" .Values.daemon.port) }}
{{- end }}
{{- if ne (empty .Values.kafka.sasl.username) (empty .Values.kafka.sasl.existingSecret.name) }}
{{- fail "kafka.sasl.username and kafka.sasl.existingSecret.name go together: alarmd refuses a SASL username without its password, and the other way round" }}
{{- end }}
{{- if and .Values.kafka.tls.caFile (not .Values.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.caFile names a file of kafka.tls.existingSecret, which is empty; set the Secret holding the CA" }}
{{- end }}
{{- range $value, $property := dict "securityProtocol" "security.protocol" "mechanism" "sasl.mechanism" "username" "sasl.username" "caFile" "ssl.ca.location" }}
{{- if and (hasKey $.Values.kafka.properties $property) (or (get $.Values.kafka $value) (get $.Values.kafka.sasl $value) (get $.Values.kafka.tls $value)) }}
{{- fail (printf "kafka.properties sets %s, which a typed kafka value sets too; keep one of them" $property) }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.properties .Values.kafka.existingSecret.name }}
{{- fail "kafka.properties and kafka.existingSecret.name both set ALARMD_KAFKA_PROPERTIES; put the non-secret properties into the Secret's JSON as well and leave kafka.properties empty" }}
{{- end }}
{{- end }}

{{/*
Volume mounts both containers share: /tmp, the Kafka TLS material, extras.
*/}}
{{- define "alarmd.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "alarmd.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.database.tls.existingSecret }}
{{ include "alarmd.databaseTlsMount" . }}
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
PostgreSQL's CA: the mount in every container that connects to the database,
and the volume it comes from. Callers check database.tls.existingSecret.
*/}}
{{- define "alarmd.databaseTlsMount" -}}
- name: db-tls
  mountPath: {{ include "alarmd.databaseTlsDir" . }}
  readOnly: true
{{- end }}

{{- define "alarmd.databaseTlsVolume" -}}
- name: db-tls
  secret:
    secretName: {{ .Values.database.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
