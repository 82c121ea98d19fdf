"""infra/: every Bicep file parses, and the template says what the design asks of it.

The Bicep CLI cannot be installed here (it downloads a binary), so these tests read the files
with pycep-parser and check the properties that matter for security and for the app to run:
identity-only storage, Key Vault for the admin key, roles named with guid(), azd outputs.
"""

import json
import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from pycep import BicepParser

from branchsync_cloud.settings import PUSH_MODES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"

# Built-in role definition ids (identical in every tenant).
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
QUEUE_DELEGATOR = "7ee386e9-84f0-448e-80a6-f185f6533131"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"


@cache
def parse(path: Path) -> dict:
    # Cached: pycep's grammar is slow, and most tests read the same few files.
    return BicepParser().parse(file_path=path)


def resources_of(doc: dict, rtype: str) -> list[dict]:
    # A conditional resource (`= if (...) {...}`) parses as {"condition": ..., "config": {...}}.
    configs = [r["config"] for r in doc.get("resources", {}).values() if r["type"] == rtype]
    return [c["config"] if "condition" in c else c for c in configs]


def only(doc: dict, rtype: str) -> dict:
    found = resources_of(doc, rtype)
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return found[0]


def role_ids(doc: dict) -> set[str]:
    """Role definition ids granted by a module's role assignments (resolving its variables)."""
    variables = {name: v["value"] for name, v in doc.get("variables", {}).items()}
    granted = set()
    for ra in resources_of(doc, "Microsoft.Authorization/roleAssignments"):
        ref = ra["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        granted.add(variables.get(ref, ref))
    return granted


def app_settings(doc: dict) -> dict[str, str]:
    site = only(doc, "Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}


def test_every_bicep_file_parses(bicep_files):
    for path in bicep_files:
        doc = parse(path)
        assert doc.get("resources") or doc.get("modules"), f"{path} declares nothing"


def test_main_uses_only_modules_that_exist():
    doc = parse(INFRA / "main.bicep")
    assert doc["modules"], "main.bicep declares no modules"
    for name, module in doc["modules"].items():
        assert module["type"] == "local", f"module {name} comes from a registry: needs the network to build"
        path = module["detail"]["path"]
        assert (INFRA / path).is_file(), f"module {name}: {path} is missing"


def test_outputs_are_named_like_the_environment_variables_they_feed():
    outputs = parse(INFRA / "main.bicep")["outputs"]
    assert {"AZURE_FUNCTIONAPP_NAME", "AZURE_STORAGE_ACCOUNT_NAME", "BRANCHSYNC_URL", "AZURE_KEY_VAULT_NAME",
            "APPLICATIONINSIGHTS_CONNECTION_STRING", "AZURE_LOCATION", "AZURE_TENANT_ID"} <= set(outputs)
    for name in outputs:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"output {name} is not an environment variable name"


def test_parameters_file_sets_every_required_parameter_and_no_unknown_one():
    params = parse(INFRA / "main.bicep")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(params), f"unknown parameters: {set(given) - set(params)}"
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= set(given), f"parameters without a value: {required - set(given)}"


def test_the_admin_key_parameter_is_secure_and_has_no_default():
    for path in (INFRA / "main.bicep", MODULES / "keyvault.bicep"):
        admin_key = parse(path)["parameters"]["adminKey"]
        assert any(d.get("type") == "secure" for d in admin_key["decorators"]), path
        assert admin_key.get("default") is None, path


def test_azure_yaml_deploys_function_app_as_the_python_function_service_api():
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    api = spec["services"]["api"]
    assert (api["project"].strip("./"), api["language"], api["host"]) == ("function_app", "python", "function")
    assert spec["infra"]["path"] == "infra"
    # The hooks run the packaging script, which must exist.
    for hook in spec["hooks"].values():
        for variant in hook.values():
            assert (ROOT / variant["run"].split()[1]).is_file()


def test_function_app_tag_matches_the_azd_service_name():
    doc = parse(MODULES / "function.bicep")
    raw = (MODULES / "function.bicep").read_text()
    assert "'azd-service-name': 'api'" in raw
    assert only(doc, "Microsoft.Web/sites")["kind"] == "functionapp,linux"


def test_storage_account_allows_no_shared_key_and_only_tls12_https():
    account = only(parse(MODULES / "storage.bicep"), "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["allowBlobPublicAccess"] is False


def test_storage_declares_the_sales_queues_tables_and_deployment_container():
    doc = parse(MODULES / "storage.bicep")
    queues = {q["name"] for q in resources_of(doc, "Microsoft.Storage/storageAccounts/queueServices/queues")}
    tables = {t["name"] for t in resources_of(doc, "Microsoft.Storage/storageAccounts/tableServices/tables")}
    assert queues == {"sales", "sales-poison"}
    assert tables == {"branches", "sales", "catalog", "deadletters"}
    containers = resources_of(doc, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert [c["name"] for c in containers] == ["deploymentContainerName", "lakeContainerName"]
    assert all(c["properties"]["publicAccess"] == "None" for c in containers)


def test_queue_name_matches_the_one_the_cloud_code_uses():
    # branchsync_cloud/queue_access.py is the source of the queue's name; the Bicep must create that queue.
    source = (ROOT / "function_app" / "branchsync_cloud" / "queue_access.py").read_text()
    assert re.search(r'^SALES_QUEUE = "sales"$', source, re.M)


def test_every_role_assignment_is_named_with_guid(bicep_files):
    count = 0
    for path in bicep_files:
        for ra in resources_of(parse(path), "Microsoft.Authorization/roleAssignments"):
            assert ra["name"]["function"]["type"] == "guid", f"{path}: role assignment not named with guid()"
            # Identities are service principals; the one group is the lake's BI readers.
            assert ra["properties"]["principalType"] == ("Group" if "lakeReaderGroupId" in str(ra["name"]) else "ServicePrincipal")
            count += 1
    assert count == 8


def test_identity_gets_exactly_the_roles_it_needs():
    assert role_ids(parse(MODULES / "storage.bicep")) == {
        BLOB_DATA_OWNER, QUEUE_DATA_CONTRIBUTOR, QUEUE_DELEGATOR, TABLE_DATA_CONTRIBUTOR, BLOB_DATA_CONTRIBUTOR,
        BLOB_DATA_READER}
    assert role_ids(parse(MODULES / "keyvault.bicep")) == {KEY_VAULT_SECRETS_USER}
    assert role_ids(parse(MODULES / "monitoring.bicep")) == {MONITORING_METRICS_PUBLISHER}


def test_the_app_writes_the_lake_and_the_bi_group_only_reads_it_both_on_the_lake_container_alone():
    doc = parse(MODULES / "storage.bicep")
    variables = {name: v["value"] for name, v in doc["variables"].items()}
    lake = {variables[ra["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]]: ra
            for ra in resources_of(doc, "Microsoft.Authorization/roleAssignments")
            if ra["scope"] == "lakeContainer"}
    assert set(lake) == {BLOB_DATA_CONTRIBUTOR, BLOB_DATA_READER}
    assert lake[BLOB_DATA_CONTRIBUTOR]["properties"]["principalId"] == "principalId"
    assert lake[BLOB_DATA_READER]["properties"]["principalId"] == "lakeReaderGroupId"
    # No group given: no reader assignment (an empty principal id would fail the deployment).
    condition = doc["resources"]["lakeReaderAssignment"]["config"]["condition"]
    assert condition["operator"]["type"] == "not" and "lakeReaderGroupId" in str(condition)
    settings = app_settings(parse(MODULES / "function.bicep"))
    assert (settings["BRANCHSYNC_LAKE_CONTAINER"], settings["BRANCHSYNC_BUSINESS_TIMEZONE"]) == (
        "lakeContainerName", "businessTimeZone")
    assert parse(INFRA / "main.bicep")["parameters"]["lakeReaderGroupId"]["default"] == ""


def test_function_app_runs_python_311_on_flex_consumption_over_https():
    doc = parse(MODULES / "function.bicep")
    plan = only(doc, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = only(doc, "Microsoft.Web/sites")["properties"]
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = site["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"


def test_the_flex_site_sets_no_site_config_property_that_flex_rejects():
    # ARM refuses ftpsState on a Flex Consumption site (error 51021), and linuxFxVersion, since
    # the runtime lives in functionAppConfig.runtime.
    site_config = only(parse(MODULES / "function.bicep"), "Microsoft.Web/sites")["properties"]["siteConfig"]
    assert not {"ftpsState", "linuxFxVersion"} & set(site_config)


def test_the_push_mode_is_a_deployment_parameter_with_exactly_the_modes_the_app_knows():
    assert app_settings(parse(MODULES / "function.bicep"))["BRANCHSYNC_PUSH_MODE"] == "pushMode"
    for path in (INFRA / "main.bicep", MODULES / "function.bicep"):
        param = parse(path)["parameters"]["pushMode"]
        allowed = next(d["argument"] for d in param["decorators"] if d.get("type") == "allowed")
        assert tuple(allowed) == PUSH_MODES and param["default"] == "queue", path
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert given["pushMode"]["value"] == "${BRANCHSYNC_PUSH_MODE=queue}"


def test_app_settings_use_identity_connections_and_no_keys():
    settings = app_settings(parse(MODULES / "function.bicep"))
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for key in ("accountName", "clientId", "queueServiceUri", "tableServiceUri", "blobServiceUri"):
        assert f"AzureWebJobsStorage__{key}" in settings
    assert "AzureWebJobsStorage" not in settings, "a plain AzureWebJobsStorage would be a connection string"
    # Flex Consumption rejects these: the runtime comes from functionAppConfig.
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings and "FUNCTIONS_EXTENSION_VERSION" not in settings
    raw = "\n".join((MODULES / name).read_text() for name in ("function.bicep", "storage.bicep"))
    for forbidden in ("AccountKey=", "listKeys(", "DefaultEndpointsProtocol"):
        assert forbidden not in raw


def test_admin_key_is_a_key_vault_reference_resolved_with_the_user_assigned_identity():
    doc = parse(MODULES / "function.bicep")
    raw = (MODULES / "function.bicep").read_text()
    assert "'@Microsoft.KeyVault(SecretUri=${adminKeySecretUri})'" in raw
    assert "BRANCHSYNC_ADMIN_KEY" in app_settings(doc)
    assert only(doc, "Microsoft.Web/sites")["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_key_vault_is_rbac_only_with_soft_delete_and_purge_protection():
    vault = only(parse(MODULES / "keyvault.bicep"), "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert "accessPolicies" not in vault


def test_three_alert_rules_watch_the_workspace():
    rules = resources_of(parse(MODULES / "alerts.bicep"), "Microsoft.Insights/scheduledQueryRules")
    assert len(rules) == 3
    for rule in rules:
        assert rule["kind"] == "LogAlert"
        assert rule["properties"]["scopes"] == ["workspaceId"]


def test_alert_queries_match_the_log_lines_the_cloud_and_host_write():
    # The stale-branch alert parses the cloud's own log lines; if they change, the alert goes blind.
    cloud = ROOT / "function_app" / "branchsync_cloud"
    assert 'log.info("pull branch=%s' in (cloud / "pull.py").read_text()
    assert 'log.info("branch enrolled branch=%s' in (cloud / "branches.py").read_text()
    alerts = (MODULES / "alerts.bicep").read_text()
    assert 'Message startswith "pull branch="' in alerts
    assert 'Message startswith "branch enrolled branch="' in alerts
    # The poison queue is '<queue>-poison' (host convention); host.json sets maxDequeueCount 5.
    assert 'Message has "sales-poison"' in alerts
    host = json.loads((ROOT / "function_app" / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == 5


@pytest.mark.parametrize("hours", [1, 6, 36])
def test_stale_branch_hours_is_substituted_into_the_query(hours):
    # Mirrors the replace() in alerts.bicep, so a typo in the placeholder shows up here.
    alerts = (MODULES / "alerts.bicep").read_text()
    query = re.search(r"var staleQuery = replace\('''(.*?)''', '(\w+)'", alerts, re.S)
    assert query, "staleQuery is not a replace() over a multi-line string"
    text, placeholder = query.group(1), query.group(2)
    assert f"ago({hours}h)" in text.replace(placeholder, str(hours))


def test_every_app_setting_a_function_binding_names_is_set_by_the_deployment():
    # A %SETTING% in a trigger (the compaction timer's schedule) that the app settings lack
    # leaves that function in error on Azure.
    named = set(re.findall(r'"%([A-Za-z_][A-Za-z0-9_]*)%"', (ROOT / "function_app" / "function_app.py").read_text()))
    assert {"CATALOG_COMPACT_SCHEDULE", "LAKE_WRITE_SCHEDULE"} <= named
    assert named <= set(app_settings(parse(MODULES / "function.bicep")))
    local = json.loads((ROOT / "function_app" / "local.settings.example.json").read_text())["Values"]
    assert named <= set(local)


def test_the_worker_runs_as_many_threads_as_the_host_starts_queue_messages_here_and_on_azure():
    # One branch's messages started at once are opened side by side and applied in a turn or
    # two; with cores + 4 threads they came in turns of a few (docs/deploy.md, "Scaling knobs").
    batch = json.loads((ROOT / "function_app" / "host.json").read_text())["extensions"]["queues"]["batchSize"]
    local = json.loads((ROOT / "function_app" / "local.settings.example.json").read_text())["Values"]
    deployed = app_settings(parse(MODULES / "function.bicep"))["PYTHON_THREADPOOL_THREAD_COUNT"]
    assert deployed == local["PYTHON_THREADPOOL_THREAD_COUNT"] == str(batch)
