"""Configuration from the environment (Functions app settings / local.settings.json).

Storage comes in one of two shapes, the same ones the Functions host accepts for its
`AzureWebJobsStorage` connection:

- a connection string in `AzureWebJobsStorage` (Azurite, tests, local runs): the app's
  table and queue clients use it, and the push SAS is signed with its account key;
- identity-based settings `AzureWebJobsStorage__*` (production; the account has shared-key
  access off): `__tableServiceUri` / `__queueServiceUri`, or `__accountName` for the public
  cloud endpoints, and `__clientId` (else `AZURE_CLIENT_ID`) naming the user-assigned
  managed identity. The push SAS is then a user delegation SAS (branchsync_cloud/queue_access.py).

Settings are read once per worker process (branchsync_cloud/http.py) and never raise; a storage
configuration that cannot work surfaces as StoreUnavailable (HTTP 503) where a storage
client is built. An admin key that is empty, or still the literal `@Microsoft.KeyVault(...)`
reference because the platform could not resolve it, counts as no key: the literal is
guessable (the vault's name is in it), so it must never open the admin API.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STORAGE_SETTING = "AzureWebJobsStorage"
ADMIN_KEY_SETTING = "BRANCHSYNC_ADMIN_KEY"
PUSH_MODE_SETTING = "BRANCHSYNC_PUSH_MODE"
# "queue": pulls hand out the add-only queue SAS (a user delegation SAS in production) and
# offer the push route as the fallback; "route": no SAS at all, branches push through
# POST /api/push only (where user delegation SAS for queues is not available).
PUSH_MODES = ("queue", "route")
KEY_VAULT_REFERENCE = "@microsoft.keyvault("
IDENTITY_PREFIX = STORAGE_SETTING + "__"
# The blob container of the data lake (docs/reporting.md, "Data lake").
LAKE_CONTAINER_SETTING = "BRANCHSYNC_LAKE_CONTAINER"
LAKE_CONTAINER_DEFAULT = "lake"


@dataclass(frozen=True)
class IdentityStorage:
    """Where the storage account is and which identity reaches it (no key anywhere)."""

    table_uri: str | None  # e.g. https://stxyz.table.core.windows.net
    queue_uri: str | None  # e.g. https://stxyz.queue.core.windows.net
    account_name: str | None = None
    client_id: str | None = None  # user-assigned identity; None: DefaultAzureCredential
    credential_kind: str | None = None  # AzureWebJobsStorage__credential ("managedidentity")
    blob_uri: str | None = None  # e.g. https://stxyz.blob.core.windows.net (the data lake's container)

    @property
    def account(self) -> str | None:
        """The account name: given, or read from the queue (else table) endpoint."""
        if self.account_name:
            return self.account_name
        for uri in (self.queue_uri, self.table_uri):
            name = account_from_uri(uri)
            if name:
                return name
        return None

    def describe(self) -> str:
        who = f"managed identity {self.client_id}" if self.client_id else "DefaultAzureCredential"
        return f"identity-based storage ({who}) tables={self.table_uri} queues={self.queue_uri}"


@dataclass(frozen=True)
class Settings:
    storage: str  # AzureWebJobsStorage as a connection string; "" when storage is identity-based
    admin_key: str  # BRANCHSYNC_ADMIN_KEY; empty disables the admin API (see admin_key_problem)
    public_url: str | None = None  # BRANCHSYNC_PUBLIC_URL: the base URL put into enrollment codes
    table_prefix: str = ""  # BRANCHSYNC_TABLE_PREFIX: keeps several deployments apart in one account
    identity: IdentityStorage | None = None  # set when AzureWebJobsStorage__* is used instead
    push_mode_setting: str = "queue"  # BRANCHSYNC_PUSH_MODE as given (see push_mode)
    # BRANCHSYNC_QUEUE_PUBLIC_URL: the queue service URL put into push SAS URLs when branches
    # reach the queue through another address than the app does (a proxy); None: the app's own.
    queue_public_url: str | None = None
    # BRANCHSYNC_BUSINESS_TIMEZONE: the zone whose date is a sale's business day in the head-office
    # summaries (an IANA name). Changing it later leaves days already summed as they were.
    business_timezone: str = "Asia/Dhaka"
    lake_container: str = LAKE_CONTAINER_DEFAULT  # BRANCHSYNC_LAKE_CONTAINER

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        connection = env.get(STORAGE_SETTING, "").strip()
        return cls(
            storage=connection,
            admin_key=env.get(ADMIN_KEY_SETTING, ""),
            public_url=env.get("BRANCHSYNC_PUBLIC_URL") or None,
            table_prefix=env.get("BRANCHSYNC_TABLE_PREFIX", ""),
            push_mode_setting=(env.get(PUSH_MODE_SETTING) or "queue").strip().lower(),
            # A connection string, when there is one, wins: the same rule as the Functions host.
            identity=None if connection else identity_from_env(env),
            queue_public_url=_endpoint(env.get("BRANCHSYNC_QUEUE_PUBLIC_URL", "").strip() or None),
            business_timezone=env.get("BRANCHSYNC_BUSINESS_TIMEZONE", "").strip() or "Asia/Dhaka",
            lake_container=env.get(LAKE_CONTAINER_SETTING, "").strip() or LAKE_CONTAINER_DEFAULT,
        )

    @property
    def business_zone(self) -> ZoneInfo:
        """The business day's zone; a name that is no IANA zone stops the app with a message saying so."""
        try:
            return ZoneInfo(self.business_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"BRANCHSYNC_BUSINESS_TIMEZONE {self.business_timezone!r} is not a time zone; give an "
                             "IANA name such as Asia/Dhaka") from exc

    @property
    def push_mode(self) -> str:
        """How branches push: "route", else "queue" (also for a value that is neither)."""
        return self.push_mode_setting if self.push_mode_setting in PUSH_MODES else "queue"

    @property
    def admin_key_state(self) -> str:
        """"set", "empty", or "unresolved_reference" (the platform left the Key Vault reference as it is)."""
        key = self.admin_key.strip()
        if not key:
            return "empty"
        if key.lower().startswith(KEY_VAULT_REFERENCE):
            return "unresolved_reference"
        return "set"

    @property
    def usable_admin_key(self) -> str | None:
        """The key admin requests must present, or None when there is no usable key."""
        return self.admin_key if self.admin_key_state == "set" else None

    @property
    def admin_key_problem(self) -> str | None:
        """Why the admin key is refused (named head-office credentials still work), with what to check; None when usable."""
        state = self.admin_key_state
        if state == "unresolved_reference":
            return (f"the admin key is unusable (named head-office credentials still work): the app setting {ADMIN_KEY_SETTING} is still a Key Vault reference, "
                    "so the reference did not resolve. Check that the secret branchsync-admin-key exists and is enabled "
                    "in the vault, that the app's managed identity has Key Vault Secrets User on it and is the app's "
                    "keyVaultReferenceIdentity, and that the vault accepts the app's network; then restart the app "
                    "(the portal shows the reference's status under Environment variables)")
        if state == "empty":
            return (f"the admin key is unusable (named head-office credentials still work): the app setting {ADMIN_KEY_SETTING} is empty. Set it (in Azure, to the "
                    "Key Vault reference infra/ deploys, and check that the reference resolves); then restart the app")
        return None

    @property
    def storage_mode(self) -> str:
        """"connection_string", "identity" or "none" (nothing configured)."""
        if self.storage:
            return "connection_string"
        return "identity" if self.identity is not None else "none"

    @property
    def storage_source(self) -> "str | IdentityStorage":
        """What TableStore and the push SAS are built from."""
        return self.identity if self.storage_mode == "identity" else self.storage

    def base_url_for(self, request_url: str) -> str:
        """Where branches reach this cloud: the configured URL, else the admin request's scheme and host."""
        if self.public_url:
            return self.public_url.rstrip("/")
        parts = urlsplit(request_url)
        return f"{parts.scheme}://{parts.netloc}"


def identity_from_env(env: Mapping[str, str]) -> IdentityStorage | None:
    """The identity-based connection from AzureWebJobsStorage__*, or None when none is set."""
    # App settings keep their case on Linux, but a hand-written local.settings.json may not.
    values = {k[len(IDENTITY_PREFIX):].lower(): v.strip() for k, v in env.items()
              if k.lower().startswith(IDENTITY_PREFIX.lower()) and v and v.strip()}
    account = values.get("accountname") or None
    table_uri = _endpoint(values.get("tableserviceuri")) or (f"https://{account}.table.core.windows.net" if account else None)
    queue_uri = _endpoint(values.get("queueserviceuri")) or (f"https://{account}.queue.core.windows.net" if account else None)
    blob_uri = _endpoint(values.get("blobserviceuri")) or (f"https://{account}.blob.core.windows.net" if account else None)
    if table_uri is None and queue_uri is None:
        return None
    client_id = values.get("clientid") or (env.get("AZURE_CLIENT_ID") or "").strip() or None
    return IdentityStorage(table_uri=table_uri, queue_uri=queue_uri, account_name=account,
                           client_id=client_id, credential_kind=values.get("credential") or None, blob_uri=blob_uri)


def _endpoint(value: str | None) -> str | None:
    return value.rstrip("/") if value else None


def account_from_uri(uri: str | None) -> str | None:
    """`stxyz` from https://stxyz.queue.core.windows.net, or from http://127.0.0.1:10001/stxyz (emulator style)."""
    if not uri:
        return None
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if host and not host.replace(".", "").isdigit() and host != "localhost" and "." in host:
        return host.split(".", 1)[0]
    path = parts.path.strip("/")
    return path.split("/", 1)[0] or None if path else None
