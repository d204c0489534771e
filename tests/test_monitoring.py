"""The monitoring files agree with the server: every metric and label the dashboard and the
alert rules name is one `/metrics` exports, and the rules are valid Prometheus rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import LoggedInUser

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "realtime.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
# Added by Prometheus to every series it scrapes, not exported by the server.
SCRAPE_LABELS = {"instance", "job"}
SCRAPE_METRICS = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "by", "rate", "increase", "histogram_quantile", "or", "and",
    "label_values", "without", "count", "unless", "on", "ignoring",
}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"]
               for target in panel.get("targets", ())]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def rule_queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names or label values."""
    query = re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", query)  # (metric, label)
    without_strings = re.sub(r'"[^"]*"', '""', query)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_matchers)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_ranges))
    return {name for name in names if name not in PROMQL_WORDS and not name.startswith("__")}


def label_names(query: str) -> set[str]:
    """The labels a query groups by or matches on."""
    labels = set()
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", query):
        labels |= {label.strip() for label in grouping.split(",") if label.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"[^"]*"', '""', query)):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return labels


async def exported(admin: LoggedInUser, client: httpx.AsyncClient) -> tuple[set[str], set[str]]:
    """The sample names and label names of a real /metrics, once the server has answered a
    few requests (so the per-route series exist)."""
    assert (await admin.http.get("/api/me")).status_code == 200
    assert (await admin.http.get("/api/admin/users")).status_code == 200
    text = (await client.get("/metrics")).text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    names = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0) for line in samples}  # type: ignore[union-attr]
    labels = {name for line in samples
              for name in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", line.split(" ")[0])}
    return names, labels


async def test_every_metric_and_label_of_the_dashboard_and_rules_is_exported(
    admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    names, labels = await exported(admin, client)
    queries = dashboard_queries() + rule_queries()
    assert len(queries) > 30
    named = set().union(*(metric_names(query) for query in queries))
    assert {"realtime_delivery_latency_seconds_bucket", "realtime_broker_connected",
            "realtime_expiry_lag_seconds_bucket", "realtime_http_requests_total"} <= named
    assert named - SCRAPE_METRICS - names == set()
    grouped = set().union(*(label_names(query) for query in queries))
    assert {"via", "route", "status", "le"} <= grouped
    assert grouped - SCRAPE_LABELS - labels == set()


def test_the_dashboard_has_a_panel_for_every_metric_the_server_exports() -> None:
    """A metric added to the server and left off the dashboard fails here."""
    from realtime.metrics import REGISTRY

    families = {family.name for family in REGISTRY.collect()}
    read = " ".join(dashboard_queries())
    missing = {family for family in families if not re.search(rf"\b{family}(_\w+)?\b", read)}
    assert missing == set()
    kinds = {panel["type"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert "heatmap" in kinds


def test_the_rules_cover_what_operators_are_paged_for() -> None:
    rules = {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"]
             for rule in group["rules"]}
    assert "> 1" in rules["RealtimeExpiryLate"]["expr"]
    assert "realtime_broker_connected == 0" in rules["RealtimeBrokerDown"]["expr"]
    assert '5..' in rules["RealtimeServerErrors"]["expr"]
    assert "> 0.25" in rules["RealtimeDeliverySlow"]["expr"]
    assert "realtime_overdue_messages" in rules["RealtimeDatabaseUnanswered"]["expr"]
    assert 'outcome="unavailable"' in rules["RealtimeMailUnavailable"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_compose_runs_prometheus_on_every_node_and_grafana_with_the_dashboard() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    nodes = {name for name, service in services.items() if "build" in service}
    scrape = yaml.safe_load(SCRAPE.read_text())
    targets = {target for job in scrape["scrape_configs"] for config in job["static_configs"]
               for target in config["targets"]}
    assert targets == {f"{node}:8000" for node in nodes}
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards" in mounts and "./deploy/grafana/provisioning" in mounts
    assert "alerts.yml" in " ".join(services["prometheus"]["volumes"])
    for name in ("prometheus", "grafana"):  # not open to the network
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])


def test_the_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (apt-get install prometheus): .ci/run installs it")
        pytest.skip("promtool is not installed (Debian's prometheus package has it)")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, check=False, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    # Made-up series on which the alerts must fire, and must not (deploy/prometheus/).
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True,
                            text=True, check=False, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
