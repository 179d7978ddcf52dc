"""The chart's documentation: a comment on every value, and every value in the
chart README's table."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import yaml

from .chart import CHART, one, render

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+):")


def documented_paths() -> dict[str, bool]:
    """Each key path of values.yaml, and whether a `# --` comment precedes it."""
    paths, stack, previous = {}, [], ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = KEY.match(line)
        if match and not line.lstrip().startswith("-"):
            depth = len(match["indent"]) // 2
            stack = [*stack[:depth], match["key"]]
            paths[".".join(stack)] = previous.lstrip().startswith("#")
        if (
            line.strip()
            and not line.lstrip().startswith("#")
            or not line.strip()
            or line.lstrip().startswith("# --")
        ):
            previous = line
    return paths


def leaves(node, path=""):
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from leaves(child, f"{path}.{key}" if path else key)
    else:
        yield path


def test_every_value_has_a_comment():
    """Every leaf of values.yaml, or the object it belongs to, has a `# --` comment."""
    paths = documented_paths()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in leaves(values):
        parts = leaf.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        assert any(paths.get(p) for p in prefixes), f"{leaf} has no comment"


def test_chart_readme_lists_every_documented_value():
    """The chart README's values table has a row for each commented value."""
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    documented = {p for p, commented in documented_paths().items() if commented}
    assert documented - rows == set(), "missing from the README table"
    assert rows - documented == set(), "in the README table but not in values.yaml"


def deploying_section() -> str:
    readme = (CHART / "README.md").read_text()
    return readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]


def existing_secrets(node, path=""):
    """(path, value) of every existingSecret in values.yaml."""
    for key, child in node.items():
        here = f"{path}.{key}" if path else key
        if key == "existingSecret":
            yield here, child
        elif isinstance(child, dict):
            yield from existing_secrets(child, here)


def test_deploying_creates_namespace_and_every_secret_before_installing():
    """The README's steps create the namespace, then a Secret for every
    existingSecret the chart can reference, with the key names values.yaml
    defaults to, and only then run helm install."""
    text = deploying_section()
    install = text.index("helm upgrade --install")
    namespace = text.index("kubectl create namespace alarms")
    command = r"kubectl -n alarms create secret generic \S+.*?(?=\n\s*\n|```)"
    commands = list(re.finditer(command, text, re.S))
    assert commands and all(namespace < m.start() < install for m in commands)
    created = " ".join(m.group(0) for m in commands)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    secrets = dict(existing_secrets(values))
    assert set(secrets) == {
        "kafka.existingSecret",
        "kafka.sasl.existingSecret",
        "kafka.tls.existingSecret",
        "database.existingSecret",
        "database.tls.existingSecret",
        "notifier.smtp.existingSecret",
        "notifier.webhooks.existingSecret",
    }, "a new Secret reference needs its kubectl command in the README"
    for path, ref in secrets.items():
        assert f"`{path}" in text, f"the README does not name {path}"
        keys = (
            [v for k, v in ref.items() if k.endswith("key") or k.endswith("Key")]
            if isinstance(ref, dict)
            else ["ca.crt", "tls.crt", "tls.key"]  # the TLS files the docs name
        )
        for key in keys:
            assert re.search(rf"--from-(literal|file)={re.escape(key)}=", created), (
                f"no kubectl command creates key {key} of {path}"
            )
    assert "migration Job" in text[:install] and "database Secret" in text[:install]


def test_deploying_values_snippet_sends_email(tmp_path: Path):
    """The install step's values snippet validates against the schema and sets
    the alarm types and real addresses, so a first install sends email."""
    snippet = re.search(
        r"```yaml\n( *# my-values.yaml\n.*?)```", deploying_section(), re.S
    )
    assert snippet, "the Deploying section has no my-values.yaml snippet"
    text = textwrap.dedent(snippet.group(1))
    values = yaml.safe_load(text)
    assert values["settings"]["emailAlarmTypes"]
    assert "localhost" not in values["notifier"]["from"]
    assert not any("localhost" in r for r in values["notifier"]["recipients"])
    path = tmp_path / "my-values.yaml"
    path.write_text(text)
    data = one(render(path), "ConfigMap")["data"]
    assert (
        json.loads(data["ALARMD_EMAIL_ALARM_TYPES"])
        == values["settings"]["emailAlarmTypes"]
    )
    assert data["ALARMD_NOTIFY_FROM"] == values["notifier"]["from"]


def test_deploying_topics_step_raises_replication_and_names_sasl():
    """`alarmd topics create` is shown with a production replication factor
    and told about the Kafka properties a SASL cluster needs."""
    text = deploying_section()
    step = text[
        text.index("alarmd topics create") : text.index("helm upgrade --install")
    ]
    assert "ALARMD_TOPIC_REPLICATION_FACTOR" in step and "production" in step
    assert "SASL" in step and "ALARMD_KAFKA_PROPERTIES" in step
