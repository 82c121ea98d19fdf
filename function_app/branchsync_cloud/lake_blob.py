"""The data lake's blob seam: its container in the deployment's storage account (azure-storage-blob).

Built like the app's table and queue clients: from the AzureWebJobsStorage connection
string (Azurite, tests), or in Azure from AzureWebJobsStorage__blobServiceUri (or
__accountName) with the app's managed identity, which holds Storage Blob Data Contributor
on the container (infra/modules/storage.bicep).

A branch's files are held with a 60-second lease on its state blob, renewed while its days
are written, so two writers (the timer and an operator's run) never interleave one branch.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError, ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError,
    ServiceRequestError, ServiceResponseError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient

from . import lake
from .credentials import credential_for
from .settings import IdentityStorage
from .store import StorageError, StoreUnavailable

LEASE_SECONDS = 60
# Renewed before this much of the lease has passed.
RENEW_AFTER_SECONDS = 20


class BlobLake:
    def __init__(self, storage: "str | IdentityStorage", container: str, *, credential=None):
        options = dict(retry_total=3, retry_backoff_factor=0.2, retry_backoff_max=2, connection_timeout=5, read_timeout=60)
        try:
            if isinstance(storage, IdentityStorage):
                if not storage.blob_uri:
                    raise StoreUnavailable("identity-based storage names no blob endpoint: set "
                                           "AzureWebJobsStorage__blobServiceUri or AzureWebJobsStorage__accountName")
                service = BlobServiceClient(storage.blob_uri, credential=credential or credential_for(storage.client_id),
                                            **options)
            else:
                if not storage:
                    raise StoreUnavailable("AzureWebJobsStorage is not set: the data lake needs the storage account")
                service = BlobServiceClient.from_connection_string(storage, **options)
        except (ValueError, AzureError) as exc:
            raise StoreUnavailable("the blob endpoint of AzureWebJobsStorage is not usable") from exc
        self.container: ContainerClient = service.get_container_client(container)
        self.ops = 0
        self._lock = threading.Lock()
        self._container_checked = False

    def _tick(self, n: int = 1) -> None:
        with self._lock:
            self.ops += n

    def ensure_container(self) -> None:
        """Create the container if it is missing (Azure: infra/ declares it; Azurite: the first run)."""
        if self._container_checked:
            return
        with _mapped("create the lake container"):
            self._tick()
            try:
                self.container.create_container()
            except ResourceExistsError:
                pass
        self._container_checked = True

    @contextmanager
    def branch(self, name: str) -> Iterator["_BranchFiles | None"]:
        self.ensure_container()
        blob = self.container.get_blob_client(lake.state_path(name))
        with _mapped(f"hold the lake of branch {name}"):
            self._tick()
            try:
                blob.upload_blob(b"", overwrite=False)  # the state blob must exist to be leased
            except ResourceExistsError:
                pass
            lease = BlobLeaseClient(blob)
            self._tick()
            try:
                lease.acquire(lease_duration=LEASE_SECONDS)
                held = True
            except HttpResponseError as exc:
                if exc.status_code != 409:  # 409 LeaseAlreadyPresent: another writer has it
                    raise
                held = False
        if not held:
            yield None
            return
        files = _BranchFiles(self, blob, lease)
        try:
            yield files
        finally:
            with _mapped(f"release the lake of branch {name}"):
                self._tick()
                lease.release()

    def peek_state(self, name: str) -> bytes | None:
        self.ensure_container()
        return self.read(lake.state_path(name)) or None

    def read(self, path: str) -> bytes | None:
        with _mapped(f"read {path}"):
            self._tick()
            try:
                return self.container.download_blob(path).readall()
            except ResourceNotFoundError:
                return None

    def list(self, prefix: str = "") -> list[str]:
        with _mapped(f"list {prefix}"):
            self._tick()
            return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix or None))


class _BranchFiles:
    def __init__(self, owner: BlobLake, state_blob, lease: BlobLeaseClient):
        self._owner, self._state, self._lease = owner, state_blob, lease
        self._renewed = time.monotonic()

    def _keep(self) -> None:
        if time.monotonic() - self._renewed > RENEW_AFTER_SECONDS:
            self._owner._tick()
            self._lease.renew()
            self._renewed = time.monotonic()

    def read_state(self) -> bytes | None:
        with _mapped("read the lake state"):
            self._owner._tick()
            return self._state.download_blob(lease=self._lease).readall() or None

    def put(self, path: str, data: bytes) -> None:
        with _mapped(f"write {path}"):
            self._keep()
            self._owner._tick()
            self._owner.container.upload_blob(path, data, overwrite=True, content_type="application/vnd.apache.parquet")

    def save_state(self, data: bytes) -> None:
        with _mapped("save the lake state"):
            self._owner._tick()
            self._state.upload_blob(data, overwrite=True, lease=self._lease, content_type="application/json")


@contextmanager
def _mapped(what: str):
    try:
        yield
    except StorageError:
        raise
    except ClientAuthenticationError as exc:
        raise StoreUnavailable(f"{what}: storage refused the app's credentials (AzureWebJobsStorage)") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StoreUnavailable(f"{what}: storage cannot be reached") from exc
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise StoreUnavailable(f"{what}: the app's identity may not write the lake container "
                                   "(it needs Storage Blob Data Contributor on it)") from exc
        raise StorageError(f"{what}: storage answered {exc.status_code} {getattr(exc, 'error_code', '') or ''}".strip()) from exc
    except AzureError as exc:
        raise StoreUnavailable(f"{what}: storage failed ({type(exc).__name__})") from exc
