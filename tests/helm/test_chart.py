"""helm/alarmd: lint, render every scenario, validate the manifests offline
against the Kubernetes schemas, and check what the chart promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest

from alarmd.settings import SECRET_KAFKA_PROPERTIES, Settings

from .chart import (
    CHART,
    KUBE_VERSION,
    SCENARIOS,
    container,
    helm,
    of_kind,
    one,
    pod_specs,
    render,
    scenario,
    template_args,
)
from .promql import metric_names

CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
# Settings whose values are secrets: they may only come from a secretKeyRef.
SECRET_WORDS = re.compile(
    r"PASSWORD|SECRET|TOKEN|DATABASE_URL|KAFKA_PROPERTIES|WEBHOOKS|_KEY\b"
)
SCENARIO_IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]


def test_scenarios_cover_the_issue():
    """Each behaviour the chart is tested for has its values file in ci/."""
    assert set(SCENARIO_IDS) >= {
        "defaults",
        "sidecar-off",
        "keda",
        "monitoring",
        "existing-secrets",
        "secured",
    }


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_chart_lints_strictly(values: Path):
    """`helm lint --strict` passes for every scenario."""
    done = helm("lint", "--strict", str(CHART), "--values", str(values),
                "--kube-version", KUBE_VERSION)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["no-values", *SCENARIO_IDS])
def test_rendered_manifests_validate_against_kubernetes_schemas(values):
    """Every built-in kind validates strictly against the Kubernetes
    $KUBE_VERSION schemas, and every CRD kind has its required fields."""
    manifests = render(values)
    assert manifests, "helm template rendered nothing"
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        if manifest["kind"] in CRD_KINDS:
            check_custom_resource(manifest, manifests)
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is invalid: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{name}: no Kubernetes schema, and not a known CRD: {exc}")


def check_custom_resource(manifest: dict, manifests: tuple[dict, ...]) -> None:
    """The fields each CRD requires, and that its references resolve."""
    kind, spec = manifest["kind"], manifest.get("spec") or {}
    assert manifest["metadata"].get("name"), f"{kind} without a name"
    if kind == "ServiceMonitor":
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"], "ServiceMonitor selects nothing"
        service = one(manifests, "Service")
        assert spec["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        ), "the ServiceMonitor does not select the chart's Service"
        service_ports = {p["name"] for p in service["spec"]["ports"]}
        assert spec["endpoints"], "ServiceMonitor without endpoints"
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in service_ports, endpoint
    elif kind == "PrometheusRule":
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["groups"], "PrometheusRule without groups"
        for group in spec["groups"]:
            assert group["name"] and group["rules"], group
            for rule in group["rules"]:
                assert rule.get("expr"), rule
                assert ("alert" in rule) != ("record" in rule), rule
    elif kind == "ScaledObject":
        assert manifest["apiVersion"] == "keda.sh/v1alpha1"
        deployment = one(manifests, "Deployment")
        assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert spec["triggers"], "ScaledObject without triggers"
        for trigger in spec["triggers"]:
            assert trigger["type"] and trigger["metadata"], trigger
            if trigger["type"] == "kafka":
                for field in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):  # fmt: skip
                    assert trigger["metadata"].get(field), (
                        f"kafka trigger lacks {field}"
                    )
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_every_container_is_locked_down(values: Path):
    """Every container, the migration's included, runs as non-root on a read-only
    root filesystem with all capabilities dropped and seccomp RuntimeDefault,
    and /tmp is an emptyDir."""
    for workload, spec in pod_specs(render(values)):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, workload
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", workload
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{workload} container {c['name']}"
            sc = c.get("securityContext")
            assert sc, f"{where} has no securityContext"
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp not an emptyDir"


def test_no_secret_value_is_inline():
    """With every credential configured, no Secret is rendered and every
    secret-looking setting comes from a secretKeyRef, never a value or the
    ConfigMap."""
    manifests = render(scenario("existing-secrets"))
    assert not of_kind(manifests, "Secret"), "the chart must not create Secrets"

    for config_map in of_kind(manifests, "ConfigMap"):
        leaked = [k for k in config_map.get("data", {}) if SECRET_WORDS.search(k)]
        assert not leaked, f"ConfigMap {config_map['metadata']['name']} holds {leaked}"

    from_secrets = set()
    for workload, spec in pod_specs(manifests):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if SECRET_WORDS.search(env["name"]):
                    assert "value" not in env, f"{workload} {c['name']}: {env['name']}"
                    assert env["valueFrom"]["secretKeyRef"]["name"], env
                    from_secrets.add((c["name"], env["name"]))
    assert from_secrets >= {
        ("daemon", "ALARMD_DATABASE_URL"),
        ("daemon", "ALARMD_KAFKA_PROPERTIES"),
        ("notifier", "ALARMD_SMTP_PASSWORD"),
        ("notifier", "ALARMD_NOTIFY_WEBHOOKS"),
        ("migrate", "ALARMD_DATABASE_URL"),
    }, from_secrets

    tls = [
        v
        for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    ]
    assert [v["secret"]["secretName"] for v in tls] == ["alarmd-prod-kafka-tls"]


def secret_settings() -> list[str]:
    """The ALARMD_* variables settings.py holds secrets in: every SecretStr
    field, and the librdkafka properties, which may hold sasl.password."""
    names = [
        f"ALARMD_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    ]
    return sorted({*names, "ALARMD_KAFKA_PROPERTIES"})


def test_secret_settings_are_the_ones_the_chart_takes_from_secrets():
    """settings.py's secrets are the five the chart references by secretKeyRef;
    a new secret setting fails here until the chart and schema handle it."""
    assert secret_settings() == [
        "ALARMD_DATABASE_URL",
        "ALARMD_KAFKA_PROPERTIES",
        "ALARMD_KAFKA_SASL_PASSWORD",
        "ALARMD_NOTIFY_WEBHOOKS",
        "ALARMD_SMTP_PASSWORD",
    ]


@pytest.mark.parametrize("variable", [*secret_settings(), "alarmd_notify_webhooks"])
def test_no_secret_setting_reaches_the_config_map_through_extra(variable: str):
    """settings.extra refuses every secret setting (in any case, since
    pydantic-settings reads variable names case-insensitively)."""
    done = helm(*template_args(None, f"settings.extra.{variable}=x"))
    assert done.returncode != 0, f"settings.extra accepted {variable}"
    assert "schema" in done.stderr.lower(), done.stderr


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["no-values", *SCENARIO_IDS])
def test_no_secret_setting_is_in_any_config_map(values):
    """No scenario renders a secret setting into a ConfigMap; the one exception
    is ALARMD_KAFKA_PROPERTIES from kafka.properties, whose names are checked."""
    for config_map in of_kind(render(values), "ConfigMap"):
        data = config_map.get("data", {})
        leaked = set(data) & set(secret_settings()) - {"ALARMD_KAFKA_PROPERTIES"}
        assert not leaked, f"ConfigMap {config_map['metadata']['name']} holds {leaked}"
        for name in json.loads(data.get("ALARMD_KAFKA_PROPERTIES", "{}")):
            assert not re.search(r"password|secret|token|credentials", name, re.I)


@pytest.mark.parametrize("name", sorted(SECRET_KAFKA_PROPERTIES))
def test_every_property_alarmd_masks_is_refused_in_plain_kafka_properties(name: str):
    """What `alarmd config` treats as a secret cannot reach the ConfigMap
    through kafka.properties; it belongs in kafka.existingSecret."""
    escaped = name.replace(".", "\\.")
    done = helm(*template_args(None, f"kafka.properties.{escaped}=x"))
    assert done.returncode != 0, f"kafka.properties accepted {name}"
    assert "schema" in done.stderr.lower(), done.stderr


@pytest.mark.parametrize(
    "name", ["ssl.key.location", "ssl.keystore.location", "ssl.ca.location"]
)
def test_kafka_location_properties_are_allowed(name: str):
    """A *.location property is a path, not a secret: kafka.properties takes
    it even when its name contains "key", and it reaches the ConfigMap."""
    escaped = name.replace(".", "\\.")
    data = one(render(None, f"kafka.properties.{escaped}=/etc/alarmd/kafka-tls/f"),
               "ConfigMap")["data"]  # fmt: skip
    assert json.loads(data["ALARMD_KAFKA_PROPERTIES"]) == {
        name: "/etc/alarmd/kafka-tls/f"
    }


def test_secured_connections_come_from_secrets_and_read_only_mounts():
    """The SASL password is a secretKeyRef in both containers, the typed Kafka
    security settings are alarmd's own and point at the mounted CA, and
    PostgreSQL's CA is mounted read-only wherever the database URL is used."""
    manifests = render(scenario("secured"))
    config = one_config(manifests)

    typed = {k: v for k, v in config.items() if k.startswith("ALARMD_KAFKA_S")}
    assert typed == {
        "ALARMD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ALARMD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ALARMD_KAFKA_SASL_USERNAME": "alarmd",
        "ALARMD_KAFKA_SSL_CA_LOCATION": "/etc/alarmd/kafka-tls/ca.crt",
    }
    assert all(
        k.removeprefix("ALARMD_").lower() in Settings.model_fields for k in typed
    )
    for name in ("daemon", "notifier"):
        env = {e["name"]: e for e in container(manifests, name)["env"]}
        assert env["ALARMD_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "alarmd-prod-kafka-sasl",
            "key": "password",
        }
    for workload, spec in pod_specs(manifests):
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["db-tls"]["secret"]["secretName"] == "alarmd-prod-database-tls"
        for c in spec["containers"]:
            mounts = {m["name"]: m for m in c["volumeMounts"]}
            assert mounts["db-tls"] == {
                "name": "db-tls",
                "mountPath": "/etc/alarmd/db-tls",
                "readOnly": True,
            }, f"{workload} {c['name']}"


@pytest.mark.parametrize(
    ("assignments", "sentence"),
    [
        pytest.param(
            ["kafka.sasl.username=alarmd"],
            "go together",
            id="username-without-password",
        ),
        pytest.param(
            ["kafka.sasl.existingSecret.name=alarmd-kafka-sasl"],
            "go together",
            id="password-without-username",
        ),
        pytest.param(
            ["kafka.tls.caFile=ca.crt"],
            "kafka.tls.existingSecret, which is empty",
            id="ca-file-without-secret",
        ),
        pytest.param(
            [
                "kafka.securityProtocol=SASL_SSL",
                "kafka.properties.security\\.protocol=SSL",
            ],
            "kafka.properties sets security.protocol",
            id="protocol-set-twice",
        ),
    ],
)
def test_secured_values_that_alarmd_would_refuse_fail_the_render(assignments, sentence):
    """Combinations the daemon's settings refuse at start-up fail `helm
    template` instead, with a sentence."""
    done = helm(*template_args(None, *assignments))
    assert done.returncode != 0
    assert sentence in done.stderr, done.stderr


def _probe_port(c: dict, probe: str) -> int:
    port = c[probe]["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port in named, f"{c['name']} {probe} names port {port}, which it lacks"
    return named[port]


def test_probes_point_at_the_ports_the_app_listens_on():
    """With the defaults, the daemon's probes hit ALARMD_HTTP_PORT's default and
    the sidecar's ALARMD_NOTIFY_HTTP_PORT's, and the ConfigMap sets the same."""
    manifests = render(scenario("defaults"))
    fields = Settings.model_fields
    expected = {
        "daemon": fields["http_port"].default,
        "notifier": fields["notify_http_port"].default,
    }
    for name, port in expected.items():
        c = container(manifests, name)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")):  # fmt: skip
            assert c[probe]["httpGet"]["path"] == path, (name, probe)
            assert _probe_port(c, probe) == port, (name, probe)

    data = one(manifests, "ConfigMap")["data"]
    assert int(data["ALARMD_HTTP_PORT"]) == expected["daemon"]
    assert int(data["ALARMD_NOTIFY_HTTP_PORT"]) == expected["notifier"]
    assert data["ALARMD_HTTP_HOST"] == "0.0.0.0", "probes come from outside the pod"


def test_sidecar_off_renders_the_daemon_alone():
    """Switched off, the sidecar leaves no container, port or alert behind."""
    manifests = render(scenario("sidecar-off"))
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["daemon"]
    ports = [p["name"] for p in one(manifests, "Service")["spec"]["ports"]]
    assert ports == ["http"]


def test_grace_period_exceeds_the_shutdown_deadline():
    """terminationGracePeriodSeconds is above the configured shutdown deadline,
    which is alarmd's own default unless overridden."""
    manifests = render(scenario("defaults"))
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    deadline = float(one(manifests, "ConfigMap")["data"]["ALARMD_SHUTDOWN_DEADLINE_S"])
    assert deadline == Settings.model_fields["shutdown_deadline_s"].default
    assert spec["terminationGracePeriodSeconds"] > deadline


def test_grace_period_below_the_shutdown_deadline_is_refused():
    """A deadline that would outlast the grace period fails the render."""
    done = helm(*template_args(None, "settings.shutdownDeadlineSeconds=60"))
    assert done.returncode != 0
    assert "terminationGracePeriodSeconds" in done.stderr


@pytest.mark.parametrize(
    "assignment",
    [
        pytest.param("replicaCunt=3", id="top-level-typo"),
        pytest.param("notifier.smtp.hots=x", id="nested-typo"),
        pytest.param(
            "settings.extra.ALARMD_DATABASE_URL=postgresql://x", id="secret-in-extra"
        ),
        pytest.param("kafka.properties.sasl\\.password=x", id="secret-kafka-property"),
        pytest.param("kafka.properties.ssl\\.key\\.password=x", id="key-password"),
        pytest.param("kafka.properties.ssl\\.key\\.pem=x", id="inline-key"),
        pytest.param(
            "kafka.properties.sasl\\.password\\.location=x", id="password-location"
        ),
        pytest.param("notifier.templates.evil\\.j2=x", id="unknown-template"),
    ],
)
def test_schema_rejects_unknown_values(assignment: str):
    """values.schema.json refuses a value it does not list, for template and lint."""
    done = helm(*template_args(None, assignment))
    assert done.returncode != 0, f"helm template accepted {assignment}"
    assert "schema" in done.stderr.lower(), done.stderr
    linted = helm("lint", "--strict", str(CHART), "--set", assignment)
    assert linted.returncode != 0, f"helm lint accepted {assignment}"


def test_schema_sets_additional_properties_false_on_every_chart_object():
    """Every object the chart defines property by property is closed."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict, path: str) -> None:
        if "Kubernetes object" in node.get("description", ""):
            return  # passed through to Kubernetes, which checks it
        if "properties" in node and node.get("type") == "object":
            assert node.get("additionalProperties") is False, path
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")

    walk(schema, "values")


def test_keda_scales_on_the_input_topic_lag_within_the_partitions():
    """KEDA watches the daemon's group on the input topic, the Deployment leaves
    replicas to it, and maxReplicaCount stays within the partitions."""
    manifests = render(scenario("keda"))
    scaled = one(manifests, "ScaledObject")
    data = one(manifests, "ConfigMap")["data"]
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    assert trigger["topic"] == data["ALARMD_INPUT_TOPIC"] == "alarms"
    assert trigger["consumerGroup"] == data["ALARMD_GROUP_ID"]
    assert scaled["spec"]["maxReplicaCount"] <= int(data["ALARMD_TOPIC_PARTITIONS"])
    assert "replicas" not in one(manifests, "Deployment")["spec"]
    assert not of_kind(manifests, "HorizontalPodAutoscaler")


@pytest.mark.parametrize("kind", ["keda", "hpa"])
def test_max_replicas_above_the_partitions_is_refused(kind: str):
    """Autoscaling past the input topic's partition count fails the render."""
    done = helm(*template_args(scenario("keda"), f"autoscaling.type={kind}",
                               "autoscaling.maxReplicas=13"))  # fmt: skip
    assert done.returncode != 0
    assert "exceeds settings.inputPartitions" in done.stderr


def test_config_change_rolls_the_pods():
    """The checksum/config annotation changes with the settings."""

    def checksum(*sets: str) -> str:
        deployment = one(render(None, *sets), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    assert checksum() != checksum("settings.logLevel=DEBUG")
    assert checksum() != checksum("notifier.templates.body\\.txt\\.j2=hi")


def test_migration_job_runs_before_install_and_upgrade():
    """`alarmd migrate` runs as a pre-install/pre-upgrade hook."""
    job = one(render(scenario("defaults")), "Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert set(hooks) == {"pre-install", "pre-upgrade"}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_template_overrides_are_mounted_at_the_template_dir():
    """Overridden templates land where ALARMD_NOTIFY_TEMPLATE_DIR points."""
    manifests = render(scenario("existing-secrets"))
    template_dir = one_config(manifests)["ALARMD_NOTIFY_TEMPLATE_DIR"]
    mounts = {m["name"]: m["mountPath"] for m in container(manifests, "notifier")["volumeMounts"]}  # fmt: skip
    assert mounts["templates"] == template_dir


def one_config(manifests: tuple[dict, ...]) -> dict:
    return [m for m in of_kind(manifests, "ConfigMap") if "ALARMD_GROUP_ID" in m["data"]][0]["data"]  # fmt: skip


def test_labels_follow_the_kubernetes_recommendation():
    """Every resource carries the app.kubernetes.io labels."""
    for manifest in render(scenario("monitoring")):
        labels = manifest["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, (manifest["kind"], key)


def monitoring_expressions() -> dict[str, str]:
    """Every PromQL expression of the alert rules and the dashboard, by where."""
    manifests = render(scenario("monitoring"))
    exprs = {}
    for group in one(manifests, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            exprs[f"alert {rule['alert']}"] = rule["expr"]
    dashboards = [
        m for m in of_kind(manifests, "ConfigMap") if "alarmd.json" in m["data"]
    ]
    assert dashboards, "the monitoring scenario renders no dashboard"
    for panel in json.loads(dashboards[0]["data"]["alarmd.json"])["panels"]:
        for target in panel["targets"]:
            exprs[f"panel {panel['title']} {target['refId']}"] = target["expr"]
    return exprs


def test_alerts_and_panels_cover_the_issue():
    """The six alerts and six panels the issue asks for are there."""
    exprs = monitoring_expressions()
    alerts = {k.split()[1] for k in exprs if k.startswith("alert ")}
    assert alerts == {
        "AlarmdConsumerLagGrowing",
        "AlarmdNoProgress",
        "AlarmdDeadLetterRate",
        "AlarmdDeadLetterLimitTripped",
        "AlarmdOutboxStale",
        "AlarmdEmailFailures",
    }
    panels = {" ".join(k.split()[1:-1]) for k in exprs if k.startswith("panel ")}
    assert panels == {
        "Throughput",
        "Consumer lag",
        "Batch latency",
        "Dead letters",
        "Oldest unpublished outbox row",
        "Emails",
    }
    for where, expr in exprs.items():
        assert metric_names(expr), f"{where} selects no metric: {expr}"
