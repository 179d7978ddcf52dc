"""The chart's documentation: a comment on every value, and every value in the
chart README's table."""

from __future__ import annotations

import re

import yaml

from .chart import CHART

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
