"""Storage settings: a connection string locally, the managed identity in production.

No Azure here: the settings parsing is pure, clients are built without a request, and the
user delegation SAS is signed with a key built by hand (generate_queue_sas is pure).
"""

import base64
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue import UserDelegationKey

from branchsync_cloud import credentials
from branchsync_cloud.queue_access import (
    DELEGATION_KEY_LIFETIME,
    SAS_LIFETIME,
    AccountKeySigner,
    DelegationSigner,
    delegation_push_access,
    signer_for,
)
from branchsync_cloud.service import Service
from branchsync_cloud.settings import IdentityStorage, Settings, account_from_uri
from branchsync_cloud.store import StoreUnavailable
from branchsync_cloud.table_store import TableStore

AZURITE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
           "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
           "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
# What infra/modules/function.bicep sets.
PRODUCTION = {
    "AzureWebJobsStorage__accountName": "stbranchsync",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": CLIENT_ID,
    "AzureWebJobsStorage__blobServiceUri": "https://stbranchsync.blob.core.windows.net/",
    "AzureWebJobsStorage__queueServiceUri": "https://stbranchsync.queue.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stbranchsync.table.core.windows.net/",
    "AZURE_CLIENT_ID": CLIENT_ID,
    "BRANCHSYNC_ADMIN_KEY": "k",
}
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


def hand_made_key(expiry: datetime = NOW + timedelta(days=1)) -> UserDelegationKey:
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = "oid-of-the-identity", "tenant-id"
    key.signed_start = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_service, key.signed_version = "q", "2026-02-06"
    key.value = base64.b64encode(b"k" * 32).decode()
    return key


# --- which mode, which endpoints -------------------------------------------------------------


def test_a_connection_string_is_used_as_before():
    settings = Settings.from_env({"AzureWebJobsStorage": AZURITE, "BRANCHSYNC_ADMIN_KEY": "k"})
    assert settings.storage_mode == "connection_string"
    assert settings.storage_source == AZURITE and settings.identity is None


def test_a_connection_string_wins_over_identity_settings_as_in_the_functions_host():
    settings = Settings.from_env({**PRODUCTION, "AzureWebJobsStorage": AZURITE})
    assert settings.storage_mode == "connection_string" and settings.identity is None


def test_the_deployed_settings_select_the_managed_identity_and_its_endpoints():
    settings = Settings.from_env(PRODUCTION)
    assert settings.storage_mode == "identity" and settings.storage == ""
    assert settings.storage_source == IdentityStorage(
        table_uri="https://stbranchsync.table.core.windows.net", queue_uri="https://stbranchsync.queue.core.windows.net",
        account_name="stbranchsync", client_id=CLIENT_ID, credential_kind="managedidentity",
        blob_uri="https://stbranchsync.blob.core.windows.net")
    assert settings.identity.account == "stbranchsync"


def test_an_account_name_alone_gives_the_public_cloud_endpoints():
    identity = Settings.from_env({"AzureWebJobsStorage__accountName": "stx"}).identity
    assert identity.table_uri == "https://stx.table.core.windows.net"
    assert identity.queue_uri == "https://stx.queue.core.windows.net"
    assert identity.blob_uri == "https://stx.blob.core.windows.net"  # the data lake's container
    assert identity.client_id is None  # DefaultAzureCredential


def test_explicit_service_uris_win_over_the_account_name():
    identity = Settings.from_env({"AzureWebJobsStorage__accountName": "stx",
                                  "AzureWebJobsStorage__tableServiceUri": "https://tables.example/",
                                  "AzureWebJobsStorage__queueServiceUri": "https://stx.queue.core.chinacloudapi.cn"}).identity
    assert identity.table_uri == "https://tables.example"
    assert identity.queue_uri == "https://stx.queue.core.chinacloudapi.cn"
    assert identity.account == "stx"


def test_the_client_id_falls_back_to_azure_client_id():
    identity = Settings.from_env({"AzureWebJobsStorage__accountName": "stx", "AZURE_CLIENT_ID": "abc"}).identity
    assert identity.client_id == "abc"
    both = Settings.from_env({"AzureWebJobsStorage__accountName": "stx", "AzureWebJobsStorage__clientId": "mine",
                              "AZURE_CLIENT_ID": "abc"}).identity
    assert both.client_id == "mine"


def test_identity_setting_names_are_matched_without_regard_to_case():
    identity = Settings.from_env({"AZUREWEBJOBSSTORAGE__ACCOUNTNAME": "stx"}).identity
    assert identity is not None and identity.account == "stx"


def test_the_account_name_is_read_from_a_service_uri_when_not_given():
    assert Settings.from_env({"AzureWebJobsStorage__queueServiceUri": "https://sty.queue.core.windows.net"}).identity.account == "sty"
    assert account_from_uri("http://127.0.0.1:10001/devstoreaccount1") == "devstoreaccount1"
    assert account_from_uri(None) is None


def test_no_storage_setting_at_all_is_mode_none_and_a_clear_503_later():
    settings = Settings.from_env({"BRANCHSYNC_ADMIN_KEY": "k", "AZURE_CLIENT_ID": "x"})
    assert settings.storage_mode == "none"
    with pytest.raises(StoreUnavailable, match="AzureWebJobsStorage"):
        TableStore(settings.storage_source)


def test_blank_identity_values_count_as_unset():
    assert Settings.from_env({"AzureWebJobsStorage__accountName": "  ", "AzureWebJobsStorage__tableServiceUri": ""}).identity is None


# --- clients built from the identity -------------------------------------------------------


def test_credential_is_a_managed_identity_for_a_client_id_else_default(monkeypatch):
    monkeypatch.setattr(credentials, "_credentials", {})
    assert isinstance(credentials.credential_for(CLIENT_ID), ManagedIdentityCredential)
    assert credentials.credential_for(CLIENT_ID) is credentials.credential_for(CLIENT_ID)  # one per process
    assert isinstance(credentials.credential_for(None), DefaultAzureCredential)


class FailingCredential:
    def get_token(self, *scopes, **kwargs):
        raise ClientAuthenticationError("no identity here")

    def get_token_info(self, *scopes, options=None):
        raise ClientAuthenticationError("no identity here")


def test_table_store_over_an_identity_points_at_the_table_endpoint_and_maps_auth_failures():
    identity = Settings.from_env(PRODUCTION).identity
    store = TableStore(identity, "t", retry_total=0, credential=FailingCredential())
    assert store._service.url.startswith("https://stbranchsync.table.core.windows.net")
    with pytest.raises(StoreUnavailable, match="credentials"):
        store.get_branch("dhaka-1")  # refused before any request leaves the machine


def test_table_store_over_an_identity_without_a_table_endpoint_is_unavailable():
    with pytest.raises(StoreUnavailable, match="tableServiceUri"):
        TableStore(IdentityStorage(table_uri=None, queue_uri="https://x.queue.core.windows.net"))


def test_the_signer_follows_the_storage_mode():
    assert isinstance(signer_for(AZURITE), AccountKeySigner)
    assert isinstance(signer_for(Settings.from_env(PRODUCTION).identity), DelegationSigner)
    service = Service(store=None, settings=Settings.from_env(PRODUCTION))
    assert isinstance(service.signer, DelegationSigner) and service.signer.account == "stbranchsync"


# --- the user delegation SAS -----------------------------------------------------------------


def test_a_user_delegation_sas_is_add_only_for_the_sales_queue_and_lasts_an_hour():
    access = delegation_push_access("stbranchsync", "https://stbranchsync.queue.core.windows.net/", hand_made_key(),
                                    NOW + timedelta(days=1), NOW)
    assert access.queue_url == "https://stbranchsync.queue.core.windows.net/sales"
    assert access.expires_at == NOW + SAS_LIFETIME
    q = {k: v[0] for k, v in parse_qs(access.sas_token).items()}
    assert q["sp"] == "a"  # add only
    assert q["se"] == "2026-11-28T10:00:00Z" and q["st"] == "2026-11-28T08:55:00Z"
    # The delegation fields: this is a user delegation SAS, not one signed with an account key.
    assert (q["skoid"], q["sktid"], q["sks"], q["skv"]) == ("oid-of-the-identity", "tenant-id", "q", "2026-02-06")
    assert "sig" in q


def test_the_user_delegation_sas_is_signed_with_the_delegation_key():
    key = hand_made_key()
    access = delegation_push_access("stbranchsync", "https://stbranchsync.queue.core.windows.net", key,
                                    NOW + timedelta(days=1), NOW)
    other = hand_made_key()
    other.value = base64.b64encode(b"z" * 32).decode()
    again = delegation_push_access("stbranchsync", "https://stbranchsync.queue.core.windows.net", other,
                                   NOW + timedelta(days=1), NOW)
    sig = {k: v[0] for k, v in parse_qs(access.sas_token).items()}["sig"]
    sig_other = {k: v[0] for k, v in parse_qs(again.sas_token).items()}["sig"]
    assert len(base64.b64decode(sig)) == 32  # HMAC-SHA256
    assert sig != sig_other  # same fields, other key value: another signature
    assert access.sas_token.replace(quote(sig, safe=""), "") == again.sas_token.replace(quote(sig_other, safe=""), "")


def test_a_sas_never_outlives_its_delegation_key():
    access = delegation_push_access("st", "https://st.queue.core.windows.net", hand_made_key(),
                                    NOW + timedelta(minutes=20), NOW)
    assert access.expires_at == NOW + timedelta(minutes=20)
    with pytest.raises(StoreUnavailable, match="expired"):
        delegation_push_access("st", "https://st.queue.core.windows.net", hand_made_key(), NOW, NOW)


class FakeQueueService:
    """Stands in for QueueServiceClient: hands out keys and counts the requests."""

    def __init__(self):
        self.calls = []

    def get_user_delegation_key(self, *, expiry, start=None, **kwargs):
        self.calls.append((start, expiry))
        return hand_made_key(expiry)


def test_the_delegation_key_is_fetched_once_and_reused_for_many_pulls():
    fake = FakeQueueService()
    signer = DelegationSigner(Settings.from_env(PRODUCTION).identity, service_client=fake)
    first = signer.access(NOW)
    for minutes in range(1, 120, 7):
        signer.access(NOW + timedelta(minutes=minutes))
    assert len(fake.calls) == 1 and signer.keys_fetched == 1
    start, expiry = fake.calls[0]
    assert start < NOW and expiry == NOW + DELEGATION_KEY_LIFETIME <= NOW + timedelta(days=7)
    assert first.expires_at == NOW + SAS_LIFETIME
    assert "skoid=" in first.sas_token and "sp=a" in first.sas_token


def test_the_delegation_key_is_renewed_before_a_sas_would_outlive_it():
    fake = FakeQueueService()
    signer = DelegationSigner(Settings.from_env(PRODUCTION).identity, service_client=fake)
    signer.access(NOW)
    late = NOW + DELEGATION_KEY_LIFETIME - SAS_LIFETIME  # less than an hour and a quarter left
    access = signer.access(late)
    assert len(fake.calls) == 2
    assert access.expires_at == late + SAS_LIFETIME  # a full hour from the fresh key


def test_a_refused_delegation_key_is_storage_unavailable_naming_the_role():
    class Refusing:
        def get_user_delegation_key(self, **kwargs):
            raise ClientAuthenticationError("403")

    signer = DelegationSigner(Settings.from_env(PRODUCTION).identity, service_client=Refusing())
    with pytest.raises(StoreUnavailable, match="Storage Queue Delegator"):
        signer.access(NOW)


def test_a_403_for_the_delegation_key_names_the_role_too():
    from azure.core.exceptions import HttpResponseError

    class Forbidden:
        def get_user_delegation_key(self, **kwargs):
            err = HttpResponseError("AuthorizationPermissionMismatch")
            err.status_code = 403
            raise err

    signer = DelegationSigner(Settings.from_env(PRODUCTION).identity, service_client=Forbidden())
    with pytest.raises(StoreUnavailable, match=r"\(403\) \(role Storage Queue Delegator"):
        signer.access(NOW)


def test_the_delegation_signer_needs_a_queue_endpoint():
    with pytest.raises(StoreUnavailable, match="queueServiceUri"):
        DelegationSigner(IdentityStorage(table_uri="https://x.table.core.windows.net", queue_uri=None))


def test_the_account_key_signer_still_signs_with_the_connection_string():
    access = AccountKeySigner(AZURITE).access(NOW)
    assert access.queue_url == "http://127.0.0.1:10001/devstoreaccount1/sales"
    assert "sp=a" in access.sas_token and "skoid" not in access.sas_token


def test_the_lake_on_identity_storage_without_a_blob_endpoint_says_which_setting_to_set():
    from branchsync_cloud.lake_blob import BlobLake

    with pytest.raises(StoreUnavailable, match="AzureWebJobsStorage__blobServiceUri"):
        BlobLake(IdentityStorage(table_uri="https://x.table.core.windows.net", queue_uri=None), "lake")
