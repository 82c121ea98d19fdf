"""Configuration from the environment (Functions app settings / local.settings.json)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Settings:
    storage: str  # AzureWebJobsStorage: tables, the sales queue, and the key that signs queue SAS
    admin_key: str  # BRANCHSYNC_ADMIN_KEY; empty disables the admin API
    public_url: str | None = None  # BRANCHSYNC_PUBLIC_URL: the base URL put into enrollment codes
    table_prefix: str = ""  # BRANCHSYNC_TABLE_PREFIX: keeps several deployments apart in one account

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        return cls(
            storage=env.get("AzureWebJobsStorage", ""),
            admin_key=env.get("BRANCHSYNC_ADMIN_KEY", ""),
            public_url=env.get("BRANCHSYNC_PUBLIC_URL") or None,
            table_prefix=env.get("BRANCHSYNC_TABLE_PREFIX", ""),
        )

    def base_url_for(self, request_url: str) -> str:
        """Where branches reach this cloud: the configured URL, else the admin request's scheme and host."""
        if self.public_url:
            return self.public_url.rstrip("/")
        parts = urlsplit(request_url)
        return f"{parts.scheme}://{parts.netloc}"
