"""Monitoring: Azure Monitor export only when configured, structured apply logs, custom metrics.

The exporter itself (azure-monitor-opentelemetry) is not installed locally: the tests check
that nothing needs it, and stand in a fake module where they check how it is called.
"""

import logging
import sys
import types
from datetime import timedelta

import pytest

from branchsync_cloud import telemetry
from shared.encoding import encode_batch, from_queue_text
from shared.errors import ContractError, ErrorCode
from tests.builders import T0, make_batch, make_sale
from tests.cloud.test_service import enroll, pull


class Recorder:
    """Stands in for an OpenTelemetry counter or histogram."""

    def __init__(self, kind: str):
        self.points = []
        if kind == "counter":
            self.add = lambda value, attributes=None: self.points.append((value, dict(attributes or {})))
        else:
            self.record = lambda value, attributes=None: self.points.append((value, dict(attributes or {})))


@pytest.fixture
def metrics():
    instruments = {telemetry.SALES_APPLIED: Recorder("counter"), telemetry.DEAD_LETTERS: Recorder("counter"),
                   telemetry.APPLY_LATENCY: Recorder("histogram")}
    telemetry.use_instruments(instruments)
    yield instruments
    telemetry.use_instruments(None)


@pytest.fixture
def fresh_config(monkeypatch):
    monkeypatch.setattr(telemetry, "_configured", False)
    yield


# --- export configuration ------------------------------------------------------------------


def test_without_a_connection_string_nothing_is_configured_or_imported(fresh_config, monkeypatch):
    before = {m for m in sys.modules if m.startswith("azure.monitor")}
    assert telemetry.configure_monitoring({}) is False
    assert telemetry.configure_monitoring({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}) is False
    assert {m for m in sys.modules if m.startswith("azure.monitor")} == before


def test_with_a_connection_string_but_no_exporter_package_the_app_still_runs(fresh_config, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="branchsync.cloud.telemetry"):
        assert telemetry.configure_monitoring({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) is False
    assert "azure-monitor-opentelemetry is not installed" in caplog.text


def fake_exporter(monkeypatch, fail=False):
    calls = []

    def configure_azure_monitor(**kwargs):
        if fail:
            raise RuntimeError("bad connection string")
        calls.append(kwargs)

    module = types.ModuleType("azure.monitor.opentelemetry")
    module.configure_azure_monitor = configure_azure_monitor
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", module)
    return calls


def test_export_is_configured_once_with_the_branchsync_loggers(fresh_config, monkeypatch):
    calls = fake_exporter(monkeypatch)
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x;IngestionEndpoint=https://in.example/"}
    assert telemetry.configure_monitoring(env) is True
    assert telemetry.configure_monitoring(env) is True
    assert calls == [{"connection_string": env["APPLICATIONINSIGHTS_CONNECTION_STRING"], "logger_name": "branchsync"}]
    # The service's loggers are below the exported one.
    assert "branchsync.cloud".startswith(telemetry.EXPORTED_LOGGER + ".")


def test_entra_authenticated_ingestion_uses_the_apps_managed_identity(fresh_config, monkeypatch):
    from azure.identity import ManagedIdentityCredential

    calls = fake_exporter(monkeypatch)
    # What infra/modules/function.bicep sets (local auth is off on Application Insights).
    telemetry.configure_monitoring({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
                                    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=abc-123;Authorization=AAD"})
    credential = calls[0]["credential"]
    assert isinstance(credential, ManagedIdentityCredential)


def test_a_failing_exporter_setup_does_not_stop_the_app(fresh_config, monkeypatch):
    fake_exporter(monkeypatch, fail=True)
    assert telemetry.configure_monitoring({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) is False


def test_metrics_are_no_ops_without_an_sdk():
    telemetry.use_instruments(None)
    telemetry.sales_applied("dhaka-1", 3)
    telemetry.dead_lettered("bad_signature")
    telemetry.apply_latency("dhaka-1", "applied", 12.5)


def test_metrics_are_no_ops_without_the_opentelemetry_api(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    telemetry.use_instruments(None)
    try:
        telemetry.sales_applied("dhaka-1", 3)
        assert telemetry._get_instruments() == {}
    finally:
        telemetry.use_instruments(None)


# --- what an apply logs and records ----------------------------------------------------------


def test_an_apply_logs_branch_seqs_count_duration_and_lag_as_text_and_dimensions(service, clock, metrics, caplog):
    secret = enroll(service)
    clock.now = T0 + timedelta(hours=3)
    batch = make_batch("dhaka-1", [make_sale(1), make_sale(2), make_sale(3, recorded_at=T0 + timedelta(minutes=30))])
    with caplog.at_level(logging.INFO, logger="branchsync.cloud"):
        outcome = service.apply_message(from_queue_text(encode_batch(batch, secret)))
    assert outcome.status == "applied" and outcome.new_sales == 3
    (record,) = [r for r in caplog.records if r.getMessage().startswith("applied batch ")]
    text = record.getMessage()
    assert "branch=dhaka-1 seqs=1-3 new=3 " in text and " ops=" in text
    assert " duration_ms=" in text and text.endswith(" lag_s=9000")  # 2.5 h from the newest sale
    assert (record.event, record.branch, record.seq_first, record.seq_last, record.sales_applied) == ("apply", "dhaka-1", 1, 3, 3)
    assert record.lag_s == 9000 and isinstance(record.duration_ms, int) and record.duration_ms >= 0
    assert metrics[telemetry.SALES_APPLIED].points == [(3, {"branch": "dhaka-1"})]
    ((ms, attrs),) = metrics[telemetry.APPLY_LATENCY].points
    assert ms >= 0 and attrs == {"branch": "dhaka-1", "status": "applied"}


def test_a_duplicate_counts_no_sales_but_its_latency(service, metrics):
    secret = enroll(service)
    body = from_queue_text(encode_batch(make_batch("dhaka-1", [1, 2]), secret))
    service.apply_message(body)
    service.apply_message(body)
    assert metrics[telemetry.SALES_APPLIED].points == [(2, {"branch": "dhaka-1"})]
    assert [a["status"] for _, a in metrics[telemetry.APPLY_LATENCY].points] == ["applied", "duplicate"]


def test_a_dead_letter_is_counted_by_code_and_logged_with_dimensions(service, metrics, caplog):
    enroll(service)
    forged = from_queue_text(encode_batch(make_batch("dhaka-1", [1]), "A" * 43))
    with caplog.at_level(logging.WARNING, logger="branchsync.cloud"):
        outcome = service.apply_message(forged)
    assert outcome.status == "dead_lettered"
    assert metrics[telemetry.DEAD_LETTERS].points == [(1, {"code": outcome.code})]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("dead-lettered message ")]
    assert (record.event, record.branch, record.code) == ("dead_letter", "dhaka-1", outcome.code)
    assert metrics[telemetry.SALES_APPLIED].points == []


# --- the client version on a pull ------------------------------------------------------------


def test_a_pull_may_carry_the_branch_version_which_is_logged(service, clock, caplog):
    secret = enroll(service)
    with caplog.at_level(logging.INFO, logger="branchsync.cloud"):
        pull(service, "dhaka-1", secret, clock, cursor=0, pending=4, version="0.3.1+win64")
        pull(service, "dhaka-1", secret, clock, cursor=0)
    with_version, without = [r for r in caplog.records if r.getMessage().startswith("pull branch=dhaka-1 ")]
    assert with_version.getMessage().endswith(" pending=4 version=0.3.1+win64")
    assert (with_version.event, with_version.branch, with_version.pending, with_version.client_version) == \
        ("pull", "dhaka-1", 4, "0.3.1+win64")
    assert without.getMessage().endswith(" version=-") and not hasattr(without, "client_version")  # absent, not None


@pytest.mark.parametrize("version", ["x" * 41, "-1", "0.3 1", "0.3;drop", "версия", "1/2"])
def test_a_pull_with_a_bad_version_is_a_bad_request_naming_it(service, clock, version):
    secret = enroll(service)
    with pytest.raises(ContractError) as err:
        pull(service, "dhaka-1", secret, clock, version=version)
    assert err.value.code == ErrorCode.BAD_REQUEST and "version" in err.value.message
