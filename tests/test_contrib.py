"""What operators install beside the recorder: the systemd unit (checked by
systemd-analyze), the Prometheus alert rules (promtool check and unit tests), the Grafana
dashboard (its queries parse and name only metrics the recorder serves), and the licence.

CI installs promtool (Debian's prometheus) and sets RECORDER_TEST_REQUIRE_PROMTOOL=1, so
the promtool tests never skip there; systemd-analyze is checked wherever it exists."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from recorder.polling.metrics import Metrics
from recorder.values import PollOutcome, PollStatus, Snapshot, Valuation

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
#: The recording-health gauges issue 10 adds; the alerts and the dashboard use them.
RECORDING_GAUGES = {
    "recorder_recording",
    "recorder_buffered_polls",
    "recorder_oldest_buffered_seconds",
}
#: Prometheus's own: whether a target could be scraped.
PROMETHEUS = {"up"}


def tool(name: str, required_by: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get(required_by):
            pytest.fail(f"{name} is not installed, and {required_by} is set")
        pytest.skip(f"{name} is not installed")
    return found


def served_metric_names() -> set[str]:
    """Every metric name the recorder's /metrics shows once it has recorded a poll."""
    metrics = Metrics(accounts=["main"], interval_seconds=60, notifications_dropped=lambda: 0)
    now = datetime.now(UTC)
    snapshot = Snapshot(
        now, {"BTC": Decimal(1)}, valuation=Valuation(total=Decimal(5), values={}, prices={})
    )
    metrics.observe(PollOutcome("main", now, PollStatus.RECORDED, snapshot, scheduled_at=now))
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def names_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (ours and Prometheus's `up`)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expression)
    candidates = set(re.findall(r"\b((?:recorder|process|python)_[a-z_]+|up)\b", without_labels))
    return candidates


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((CONTRIB / "grafana" / "recorder.json").read_text())
    found = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    found += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (CONTRIB / "recorder.service").read_text()
    # verify checks that ExecStart exists: point it at this installation's recorder.
    installed = Path(sys.executable).parent / "recorder"
    (tmp_path / "recorder.service").write_text(
        unit.replace("/opt/recorder/bin/recorder", str(installed))
    )
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "recorder.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = tool("promtool", "RECORDER_TEST_REQUIRE_PROMTOOL")
    folder = CONTRIB / "prometheus"
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run(
            [promtool, *command], cwd=folder, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_the_dashboard_queries_parse(tmp_path: Path) -> None:
    promtool = tool("promtool", "RECORDER_TEST_REQUIRE_PROMTOOL")
    # Grafana's variables become what they stand for, and each query a recording rule,
    # which promtool parses as PromQL.
    rules = [
        {
            "record": f"dashboard:query_{index}",
            "expr": expression.replace("$__rate_interval", "5m").replace("$account", ".*"),
        }
        for index, expression in enumerate(dashboard_expressions())
        if not expression.startswith("label_values(")
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_and_alerts_name_only_metrics_the_recorder_serves() -> None:
    known = served_metric_names() | RECORDING_GAUGES | PROMETHEUS
    alerts = (CONTRIB / "prometheus" / "alerts.yml").read_text()
    expressions = [
        *dashboard_expressions(),
        *re.findall(r"expr: >?-?\s*(.+?)\n\s+(?:for|labels):", alerts, re.S),
    ]
    assert len(expressions) > 15
    used = set().union(*(names_in(e) for e in expressions))
    assert used - known == set()
    # What the issue asks the dashboard to show.
    for wanted in (
        "recorder_portfolio_value_usdt",
        "recorder_balance",
        "recorder_poll_errors_total",
        "recorder_poll_lateness_seconds_bucket",
        "recorder_buffered_polls",
        "recorder_up",
    ):
        assert any(wanted in e for e in dashboard_expressions()), wanted
    for alert in (
        "RecorderAccountSilent",
        "RecorderPollsNotReachingDatabase",
        "RecorderPollErrorRate",
    ):
        assert f"alert: {alert}" in alerts


def test_the_licence_matches_the_package_metadata() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    metadata = importlib.metadata.metadata("coinw-recorder")
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in (metadata.get_all("License-File") or [])
