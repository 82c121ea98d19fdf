"""Short-lived, add-only SAS for the sales queue, and the app's own writes to it.

Branch PCs never hold the account key: each pull hands out a SAS that can only add
messages to `sales` and expires within the hour. It is signed one of two ways:

- with the account key of an `AzureWebJobsStorage` connection string (Azurite, tests);
- in production, where shared-key access is off on the account, as a **user delegation
  SAS**: the app's managed identity asks storage for a user delegation key
  (`QueueServiceClient.get_user_delegation_key`, role Storage Queue Delegator), caches it
  for hours, and signs each hour-long SAS with it (no storage call per pull).

User delegation SAS for queues rests on a preview service version; where it is not
available a deployment sets BRANCHSYNC_PUSH_MODE=route and branches hand their messages to
POST /api/push instead, which puts them on the queue with the app's own identity
(`SalesQueue`). The messages are the same either way.
"""

import threading
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.storage.queue import QueueClient, QueueSasPermissions, QueueServiceClient, UserDelegationKey, generate_queue_sas

from shared.models import QueueAccess

from .credentials import credential_for
from .settings import IdentityStorage
from .store import StoreUnavailable

SALES_QUEUE = "sales"
SAS_LIFETIME = timedelta(hours=1)
# Start a little in the past so a storage clock slightly behind ours accepts a fresh SAS.
SAS_START_SLACK = timedelta(minutes=5)
# A user delegation key may last up to 7 days; a day keeps a leaked key's reach short while
# costing one storage call per instance per day. It is renewed once less than
# KEY_RENEW_BEFORE is left, so every SAS signed with it runs its full hour.
DELEGATION_KEY_LIFETIME = timedelta(days=1)
KEY_RENEW_BEFORE = SAS_LIFETIME + timedelta(minutes=15)


def parse_connection_string(connection_string: str) -> dict[str, str]:
    parts = {}
    for item in connection_string.split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            parts[key.strip().lower()] = value.strip()
    return parts


def queue_endpoint(connection_string: str) -> str:
    parts = parse_connection_string(connection_string)
    if parts.get("queueendpoint"):
        return parts["queueendpoint"].rstrip("/")
    account = parts.get("accountname")
    if not account:
        raise StoreUnavailable("AzureWebJobsStorage names no AccountName or QueueEndpoint")
    protocol = parts.get("defaultendpointsprotocol", "https")
    suffix = parts.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.queue.{suffix}"


def push_access(connection_string: str, now: datetime, queue: str = SALES_QUEUE,
                public_endpoint: str | None = None) -> QueueAccess:
    """An add-only SAS signed with the account key of a connection string, naming
    `public_endpoint` (where branches reach the queue service) when given."""
    parts = parse_connection_string(connection_string)
    account, key = parts.get("accountname"), parts.get("accountkey")
    if not account or not key:
        raise StoreUnavailable("AzureWebJobsStorage carries no AccountName/AccountKey, so no queue SAS can be issued")
    expires = now + SAS_LIFETIME
    sas = generate_queue_sas(
        account, queue, account_key=key, permission=QueueSasPermissions(add=True),
        expiry=expires, start=now - SAS_START_SLACK,
    )
    endpoint = public_endpoint.rstrip("/") if public_endpoint else queue_endpoint(connection_string)
    return QueueAccess(queue_url=f"{endpoint}/{queue}", sas_token=sas, expires_at=expires)


def delegation_push_access(account: str, queue_uri: str, key: UserDelegationKey, key_expiry: datetime,
                           now: datetime, queue: str = SALES_QUEUE) -> QueueAccess:
    """An add-only user delegation SAS; pure (no storage call). It never outlives the key."""
    expires = min(now + SAS_LIFETIME, key_expiry)
    if expires <= now:
        raise StoreUnavailable("the user delegation key has expired; no queue SAS can be issued")
    sas = generate_queue_sas(
        account, queue, permission=QueueSasPermissions(add=True), expiry=expires,
        start=now - SAS_START_SLACK, user_delegation_key=key,
    )
    return QueueAccess(queue_url=f"{queue_uri.rstrip('/')}/{queue}", sas_token=sas, expires_at=expires)


class AccountKeySigner:
    """Push SAS from a connection string's account key (Azurite, tests, local runs)."""

    def __init__(self, connection_string: str, public_endpoint: str | None = None):
        self.connection_string = connection_string
        self.public_endpoint = public_endpoint

    def access(self, now: datetime) -> QueueAccess:
        return push_access(self.connection_string, now, public_endpoint=self.public_endpoint)


class DelegationSigner:
    """Push SAS signed with a cached user delegation key obtained with the app's identity."""

    def __init__(self, identity: IdentityStorage, service_client=None):
        if not identity.queue_uri:
            raise StoreUnavailable("identity-based storage names no queue endpoint: set "
                                   "AzureWebJobsStorage__queueServiceUri or AzureWebJobsStorage__accountName")
        account = identity.account
        if not account:
            raise StoreUnavailable("cannot tell the storage account's name: set AzureWebJobsStorage__accountName")
        self.account = account
        self.queue_uri = identity.queue_uri
        self._identity = identity
        self._client = service_client  # injected by tests; built on first use otherwise
        self._key: UserDelegationKey | None = None
        self._key_expiry: datetime | None = None
        self._lock = threading.Lock()
        self.keys_fetched = 0

    def _service(self):
        if self._client is None:
            self._client = QueueServiceClient(
                self.queue_uri, credential=credential_for(self._identity.client_id),
                retry_total=2, connection_timeout=5, read_timeout=15,
            )
        return self._client

    def _key_for(self, now: datetime) -> tuple[UserDelegationKey, datetime]:
        with self._lock:
            if self._key is None or self._key_expiry - now < KEY_RENEW_BEFORE:
                expiry = now + DELEGATION_KEY_LIFETIME
                try:
                    key = self._service().get_user_delegation_key(start=now - SAS_START_SLACK, expiry=expiry)
                except ClientAuthenticationError as exc:
                    raise StoreUnavailable("storage refused the app's identity a user delegation key "
                                           "(role Storage Queue Delegator missing?)") from exc
                except HttpResponseError as exc:
                    hint = " (role Storage Queue Delegator missing?)" if exc.status_code == 403 else ""
                    raise StoreUnavailable(f"storage refused a user delegation key ({exc.status_code}){hint}") from exc
                except AzureError as exc:
                    raise StoreUnavailable(f"storage cannot be reached for a user delegation key ({type(exc).__name__})") from exc
                self._key, self._key_expiry = key, _key_expiry(key, expiry)
                self.keys_fetched += 1
            return self._key, self._key_expiry

    def access(self, now: datetime) -> QueueAccess:
        key, key_expiry = self._key_for(now)
        return delegation_push_access(self.account, self.queue_uri, key, key_expiry, now)


class SalesQueue:
    """The app's own client for the sales queue: a connection string locally, the identity in production."""

    def __init__(self, storage: "str | IdentityStorage", queue: str = SALES_QUEUE, client=None):
        self._storage, self._queue, self._client = storage, queue, client
        self._lock = threading.Lock()

    def _queue_client(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                options = dict(retry_total=2, connection_timeout=5, read_timeout=15)
                storage = self._storage
                try:
                    if isinstance(storage, IdentityStorage):
                        if not storage.queue_uri:
                            raise StoreUnavailable("identity-based storage names no queue endpoint: set "
                                                   "AzureWebJobsStorage__queueServiceUri or AzureWebJobsStorage__accountName")
                        self._client = QueueClient(storage.queue_uri, self._queue,
                                                   credential=credential_for(storage.client_id), **options)
                    else:
                        if not storage:
                            raise StoreUnavailable("AzureWebJobsStorage is not set, so nothing can be queued")
                        self._client = QueueClient.from_connection_string(storage, self._queue, **options)
                except (ValueError, AzureError) as exc:
                    raise StoreUnavailable("the sales queue's settings are not usable") from exc
            return self._client

    def send(self, texts: list[str]) -> None:
        """Put each text on the queue as it is (already base64, as a branch sends it), in order."""
        client = self._queue_client()
        for text in texts:
            try:
                client.send_message(text)
            except ClientAuthenticationError as exc:
                raise StoreUnavailable("storage refused the app's identity on the sales queue "
                                       "(role Storage Queue Data Contributor missing?)") from exc
            except AzureError as exc:
                raise StoreUnavailable(f"the sales queue cannot be reached ({type(exc).__name__})") from exc


def signer_for(storage: "str | IdentityStorage", public_endpoint: str | None = None):
    """The push-SAS signer for a connection string or identity-based settings; `public_endpoint`
    (connection strings only) replaces the queue endpoint the SAS URL names."""
    if isinstance(storage, IdentityStorage):
        return DelegationSigner(storage)
    return AccountKeySigner(storage, public_endpoint)


def _key_expiry(key: UserDelegationKey, asked: datetime) -> datetime:
    """When the key really ends: what storage says (`signed_expiry`), else what was asked for."""
    value = getattr(key, "signed_expiry", None)
    if isinstance(value, datetime):
        return min(asked, value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return asked
        return min(asked, parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc))
    return asked
