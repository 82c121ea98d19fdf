"""Short-lived, add-only SAS for the sales queue, signed with the storage account key.

Branch PCs never hold the account key: each pull hands out a SAS that can only add
messages to `sales` and expires within the hour.
"""

from datetime import datetime, timedelta

from azure.storage.queue import QueueSasPermissions, generate_queue_sas

from shared.models import QueueAccess

from .store import StoreUnavailable

SALES_QUEUE = "sales"
SAS_LIFETIME = timedelta(hours=1)
# Start a little in the past so a storage clock slightly behind ours accepts a fresh SAS.
SAS_START_SLACK = timedelta(minutes=5)


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


def push_access(connection_string: str, now: datetime, queue: str = SALES_QUEUE) -> QueueAccess:
    parts = parse_connection_string(connection_string)
    account, key = parts.get("accountname"), parts.get("accountkey")
    if not account or not key:
        raise StoreUnavailable("AzureWebJobsStorage carries no AccountName/AccountKey, so no queue SAS can be issued")
    expires = now + SAS_LIFETIME
    sas = generate_queue_sas(
        account, queue, account_key=key, permission=QueueSasPermissions(add=True),
        expiry=expires, start=now - SAS_START_SLACK,
    )
    return QueueAccess(queue_url=f"{queue_endpoint(connection_string)}/{queue}", sas_token=sas, expires_at=expires)
