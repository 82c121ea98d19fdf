"""branchsync cloud: Azure Functions (Python v2 model). Routes are in docs/protocol.md.

Handlers are thin: parse the request (branchsync_cloud/http.py reads headers and query
parameters), call one method of the Service facade (branchsync_cloud/service.py), serialise
the answer (http.py maps every error to JSON). Run with `func start` here, or with
the dev host: `branchsync-cloud --port 7071`.
"""

import logging

import azure.functions as func

from branchsync_cloud import faults, telemetry
from branchsync_cloud.http import (
    date_param, day_params, get_lake_writer, get_service, get_settings, handle, int_param, json_response, parse_body,
    pull_answer, rebuild_source, signed_request, time_param,
)
from branchsync_cloud.queue_access import SALES_QUEUE
from branchsync_cloud.reports import EXPORT_LIMIT_DEFAULT
from shared.limits import EXPORT_PAGE_MAX
from branchsync_cloud.audit import AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX
from shared.access import PersonCreate
from shared.models import BranchCreate, CatalogImport, EnrollRequest

# Once per worker process, at import and so before any function runs: export logs with
# their custom dimensions, and the custom metrics, to Application Insights when
# APPLICATIONINSIGHTS_CONNECTION_STRING is set; a no-op (nothing imported) otherwise.
telemetry.configure_monitoring()
# Failpoints for the fault-injection suite, from BRANCHSYNC_FAILPOINTS (never set in production).
faults.configure()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger("branchsync.cloud")


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    # Liveness: answers 200 even when storage settings are wrong (those show up as 503 elsewhere),
    # but says when the admin API is down for want of a usable key (an unresolved Key Vault reference).
    problem = get_settings().admin_key_problem
    if problem is None:
        return json_response({"status": "ok"})
    return json_response({"status": "degraded", "admin_api": get_settings().admin_key_state, "problem": problem})


@app.route(route="enroll", methods=["POST"])
def enroll(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.enroll(parse_body(req, EnrollRequest)))


@app.route(route="pull", methods=["GET"])
def pull(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: pull_answer(svc, signed_request(req)))


@app.route(route="push", methods=["POST"])
def push(req: func.HttpRequest) -> func.HttpResponse:
    # The fallback to the queue SAS: the branch's own queue messages, put on the sales queue as they are.
    return handle(req, lambda svc: svc.push(signed_request(req)), status=202)


@app.route(route="manage/branches", methods=["POST"])
def admin_create_branch(req: func.HttpRequest) -> func.HttpResponse:
    def create(svc):
        body = parse_body(req, BranchCreate)
        return svc.create_branch(body.name, svc.settings.base_url_for(req.url))

    return handle(req, create, admin=True, status=201)


@app.route(route="manage/branches", methods=["GET"])
def admin_list_branches(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.list_branches(), admin=True)


@app.route(route="manage/branches/{name}/rotate", methods=["POST"])
def admin_rotate_branch(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.rotate_branch(req.route_params.get("name", "")), admin=True)


@app.route(route="manage/branches/{name}/revoke", methods=["POST"])
def admin_revoke_branch(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.revoke_branch(req.route_params.get("name", "")), admin=True)


@app.route(route="manage/catalog", methods=["POST"])
def admin_import_catalog(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.import_catalog(parse_body(req, CatalogImport)), admin=True)


@app.route(route="manage/catalog/compact", methods=["POST"])
def admin_compact_catalog(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.compact_catalog(), admin=True)


@app.route(route="manage/catalog/{sku}", methods=["DELETE"])
def admin_delete_sku(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.delete_sku(req.route_params.get("sku", "")), admin=True)


@app.route(route="manage/sales", methods=["GET"])
def admin_export_sales(req: func.HttpRequest) -> func.HttpResponse:
    def export(svc):
        limit = int_param(req.params, "limit", EXPORT_LIMIT_DEFAULT, 1, EXPORT_PAGE_MAX)
        return svc.export_sales(req.params.get("branch") or None, req.params.get("after") or None, limit)

    return handle(req, export, admin=True)


@app.route(route="manage/reports/price-differences", methods=["GET"])
def admin_price_differences(req: func.HttpRequest) -> func.HttpResponse:
    def report(svc):
        limit = int_param(req.params, "limit", EXPORT_LIMIT_DEFAULT, 1, EXPORT_PAGE_MAX)
        return svc.price_differences(req.params.get("branch") or None, time_param("since", req.params.get("since")),
                                     req.params.get("after") or None, limit)

    return handle(req, report, admin=True)


@app.route(route="manage/lake/write", methods=["POST"])
def admin_write_lake(req: func.HttpRequest) -> func.HttpResponse:
    # What the timer write_lake does, now; each `day` (YYYY-MM-DD) is written again even if unchanged.
    return handle(req, lambda svc: get_lake_writer().run(rewrite=day_params(req.params)).answer(), admin=True)


# Reports from the day summaries (read only; a reports role may read them). from/to: business days.
@app.route(route="manage/reports/sales", methods=["GET"])
def admin_sales_report(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.sales_report(date_param(req.params, "from"), date_param(req.params, "to"),
                                                    req.params.get("branch") or None, req.params.get("by") or "day"),
                  admin=True)


@app.route(route="manage/reports/shifts", methods=["GET"])
def admin_shifts_report(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.shifts_report(date_param(req.params, "from"), date_param(req.params, "to"),
                                                     req.params.get("branch") or None), admin=True)


@app.route(route="manage/reports/exceptions", methods=["GET"])
def admin_exceptions_report(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.exceptions_report(date_param(req.params, "from"), date_param(req.params, "to"),
                                                         req.params.get("branch") or None), admin=True)


@app.route(route="manage/reports/rebuild", methods=["POST"])
def admin_rebuild_summaries(req: func.HttpRequest) -> func.HttpResponse:
    # from=lake: fold the data lake's events instead of the stored sales (docs/reporting.md, "Data lake").
    def rebuild(svc):
        branch = req.params.get("branch") or None
        if rebuild_source(req.params) == "lake":
            return get_lake_writer().rebuild_summaries(branch)
        return svc.rebuild_summaries(branch)

    return handle(req, rebuild, admin=True)


@app.route(route="manage/deadletters", methods=["GET"])
def admin_list_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.list_dead_letters(), admin=True)


@app.route(route="manage/deadletters/{id}", methods=["GET"])
def admin_show_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.get_dead_letter(req.route_params.get("id", "")), admin=True)


@app.route(route="manage/deadletters/{id}/replay", methods=["POST"])
def admin_replay_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.replay_dead_letter(req.route_params.get("id", "")), admin=True)


@app.route(route="manage/deadletters/{id}", methods=["DELETE"])
def admin_discard_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.discard_dead_letter(req.route_params.get("id", "")), admin=True)


@app.route(route="manage/whoami", methods=["GET"])
def admin_whoami(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc, who: svc.whoami(who), admin=True, caller=True)


@app.route(route="manage/people", methods=["GET"])
def admin_list_people(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc: svc.list_people(), admin=True)


@app.route(route="manage/people", methods=["POST"])
def admin_add_person(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc, who: svc.create_person(parse_body(req, PersonCreate), who), admin=True, caller=True,
                  status=201)


@app.route(route="manage/people/{name}/revoke", methods=["POST"])
def admin_revoke_person(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda svc, who: svc.revoke_person(req.route_params.get("name", ""), who), admin=True,
                  caller=True)


@app.route(route="manage/audit", methods=["GET"])
def admin_audit(req: func.HttpRequest) -> func.HttpResponse:
    def entries(svc):
        limit = int_param(req.params, "limit", AUDIT_PAGE_DEFAULT, 1, AUDIT_PAGE_MAX)
        return svc.audit_entries(time_param("since", req.params.get("since")), req.params.get("who") or None,
                                 req.params.get("after") or None, limit)

    return handle(req, entries, admin=True)


# Binary: a frame (magic + HMAC + zlib) is not UTF-8, and a string binding (also what an
# undeclared dataType gets) would fail on it before the function runs, poisoning every message.
@app.queue_trigger(arg_name="msg", queue_name=SALES_QUEUE, connection="AzureWebJobsStorage", data_type=func.DataType.BINARY)
def apply_sales(msg: func.QueueMessage) -> None:
    # Bad input is dead-lettered inside and returns; storage errors raise so the queue retries.
    outcome = get_service().apply_message(msg.get_body())
    log.info("queue message id=%s outcome=%s branch=%s new=%d applied_through=%d",
             msg.id, outcome.status, outcome.branch, outcome.new_sales, outcome.applied_through)


# The schedule is an app setting (NCRONTAB, UTC; docs/deploy.md): the host resolves %...% and
# refuses to run this function when the setting is missing. The timer's monitor keeps one
# run per occurrence across instances and catches up a run missed while the app was down.
@app.timer_trigger(arg_name="timer", schedule="%CATALOG_COMPACT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def compact_catalog(timer: func.TimerRequest) -> None:
    # Storage errors raise: the run is logged as failed and the next occurrence tries again.
    result = get_service().compact_catalog()
    log.info("catalog compacted on schedule past_due=%s purged=%d entries=%d->%d segments=%d->%d",
             timer.past_due, result.purged, result.entries_before, result.entries_after,
             result.segments_before, result.segments_after)


# The data lake (docs/reporting.md, "Data lake"): schedule in LAKE_WRITE_SCHEDULE (NCRONTAB, UTC).
# Each run writes the business days that got applied events since the last one; with the
# monitor, a run missed while the app was down runs once when it is back.
@app.timer_trigger(arg_name="timer", schedule="%LAKE_WRITE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def write_lake(timer: func.TimerRequest) -> None:
    # Storage errors raise: the run is logged as failed; the next one reads the same events again.
    result = get_lake_writer().run()
    log.info("lake written past_due=%s branches=%d events=%d days=%d files=%d bytes=%d busy=%s more=%s",
             timer.past_due, result.branches, result.events, len(result.days), result.files, result.bytes,
             ",".join(result.busy) or "-", ",".join(result.more) or "-")
