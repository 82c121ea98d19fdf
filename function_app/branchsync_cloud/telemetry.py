"""Monitoring: OpenTelemetry to Application Insights, and the app's custom metrics.

- `configure_monitoring()` runs once, at import of function_app.py. It does something only
  when APPLICATIONINSIGHTS_CONNECTION_STRING is set and azure-monitor-opentelemetry is
  installed (function_app/requirements.txt; not a local dependency). Otherwise nothing is
  imported and nothing is sent. It exports the `branchsync` loggers, so the `extra=` fields
  of their records arrive as custom dimensions (AppTraces.Properties), and the metrics below
  (AppMetrics). Local auth is off on the Application Insights resource, so the exporter
  authenticates with the app's managed identity.
- The metrics go through the OpenTelemetry metrics API. Without opentelemetry-api, or
  before (or without) a configured SDK, they are no-ops. docs/ops.md queries them by the
  names below; tests/cloud/test_ops_docs.py checks that every name it uses appears here.
"""

import logging
import os
import threading
from collections.abc import Mapping

log = logging.getLogger("branchsync.cloud.telemetry")

METER_NAME = "branchsync.cloud"
SALES_APPLIED = "branchsync.sales_applied"  # counter: new sales applied, attribute branch
DEAD_LETTERS = "branchsync.dead_letters"  # counter: messages dead-lettered, attribute code
APPLY_LATENCY = "branchsync.apply_latency_ms"  # histogram: one apply of one message, attribute branch
# The loggers exported to Application Insights by the OpenTelemetry pipeline.
EXPORTED_LOGGER = "branchsync"

_configured = False
_lock = threading.Lock()
_instruments: dict[str, object] | None = None


def configure_monitoring(env: Mapping[str, str] = os.environ) -> bool:
    """Set up Azure Monitor export once per process; True when export is on."""
    global _configured
    connection_string = (env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or "").strip()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor
        except ImportError:
            log.warning("APPLICATIONINSIGHTS_CONNECTION_STRING is set but azure-monitor-opentelemetry is not installed; "
                        "custom dimensions and metrics are not exported")
            return False
        options: dict = {"connection_string": connection_string, "logger_name": EXPORTED_LOGGER}
        credential = _exporter_credential(env)
        if credential is not None:
            options["credential"] = credential
        try:
            configure_azure_monitor(**options)
        except Exception:  # monitoring must never stop the app from starting
            log.exception("could not configure Azure Monitor export")
            return False
        _configured = True
        _reset_instruments()
        return True


def _exporter_credential(env: Mapping[str, str]):
    """The identity for Entra-authenticated ingestion, per APPLICATIONINSIGHTS_AUTHENTICATION_STRING."""
    auth = {}
    for item in (env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") or "").split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            auth[k.strip().lower()] = v.strip()
    if auth.get("authorization", "").upper() != "AAD":
        return None
    from .credentials import credential_for

    return credential_for(auth.get("clientid") or (env.get("AZURE_CLIENT_ID") or "").strip() or None)


def _reset_instruments() -> None:
    global _instruments
    _instruments = None


def _get_instruments() -> dict[str, object]:
    global _instruments
    if _instruments is None:
        try:
            from opentelemetry import metrics
        except ImportError:
            _instruments = {}
        else:
            meter = metrics.get_meter(METER_NAME)
            _instruments = {
                SALES_APPLIED: meter.create_counter(SALES_APPLIED, unit="{sale}", description="Sales newly applied to the sales table"),
                DEAD_LETTERS: meter.create_counter(DEAD_LETTERS, unit="{message}", description="Queue messages dead-lettered"),
                APPLY_LATENCY: meter.create_histogram(APPLY_LATENCY, unit="ms", description="Time to apply one queue message"),
            }
    return _instruments


def use_instruments(instruments: dict[str, object] | None) -> None:
    """Tests: record into these objects (each with add() or record()); None: back to the API's."""
    global _instruments
    _instruments = instruments


def _record(name: str, value: float, attributes: dict) -> None:
    try:
        instrument = _get_instruments().get(name)
        if instrument is None:
            return
        if hasattr(instrument, "add"):
            instrument.add(value, attributes)
        else:
            instrument.record(value, attributes)
    except Exception:  # a metric must never fail an apply
        log.debug("metric %s not recorded", name, exc_info=True)


def sales_applied(branch: str, count: int) -> None:
    if count > 0:
        _record(SALES_APPLIED, count, {"branch": branch})


def dead_lettered(code: str) -> None:
    _record(DEAD_LETTERS, 1, {"code": code})


def apply_latency(branch: str, status: str, ms: float) -> None:
    _record(APPLY_LATENCY, ms, {"branch": branch, "status": status})


def dims(**fields) -> dict:
    """Custom dimensions for a log record's `extra=`: absent rather than None (OpenTelemetry drops None)."""
    return {k: v for k, v in fields.items() if v is not None}
