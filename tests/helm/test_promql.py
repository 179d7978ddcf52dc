"""The metric-name extraction the dashboard and alert checks rely on."""

import pytest

from .promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param("up", {"up"}, id="bare"),
        pytest.param('sum(rate(a_total{x="y(z)"}[5m]))', {"a_total"}, id="matchers"),
        pytest.param(
            "histogram_quantile(0.99, sum by (le) (rate(b_bucket[$__rate_interval])))",
            {"b_bucket"},
            id="grouping-and-grafana-range",
        ),
        pytest.param("sum(a) > 0 and sum(rate(b[5m])) == 0", {"a", "b"}, id="and"),
        pytest.param("x / on(job) group_left(pod) y", {"x", "y"}, id="matching"),
        pytest.param("c > 1e3", {"c"}, id="exponent"),
    ],
)
def test_metric_names_finds_selected_series_only(expr, names):
    """Only the series an expression selects are reported, not functions,
    labels or keywords."""
    assert metric_names(expr) == names
