"""The Entra ID credential the app's own storage clients use when storage is identity-based.

azure-identity is imported only here and only when needed, so local runs on a connection
string never touch it. One credential per client id per process: it caches its tokens.
"""

import threading

from .store import StoreUnavailable

_credentials: dict[str | None, object] = {}
_lock = threading.Lock()


def credential_for(client_id: str | None):
    """ManagedIdentityCredential for a user-assigned identity, else DefaultAzureCredential."""
    with _lock:
        cred = _credentials.get(client_id)
        if cred is None:
            try:
                from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
            except ImportError as exc:  # pragma: no cover - requirements.txt installs it
                raise StoreUnavailable("identity-based storage needs the azure-identity package") from exc
            cred = ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
            _credentials[client_id] = cred
        return cred
