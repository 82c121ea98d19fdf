"""The admin CLI's one seam to the cloud: typed calls over the HTTP admin API."""

from collections.abc import Iterator, Sequence
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.models import (AppliedSale, BranchCreate, BranchCreated, BranchList, BranchRevocation, BranchRotation,
                           CatalogCompaction, CatalogImport, CatalogWriteResult, DeadLetterDetail, DeadLetterInfo, DeadLetterList,
                           LakeWriteResult, PriceDifference, PriceDifferencePage, Product, ReplayResult, ReportTable,
                           SalesExportPage, SummaryRebuild)
from shared.access import (AuditPage, CREDENTIAL_PREFIX, PeopleList, PersonCreate, PersonCreated, PersonRevocation,
                           Role, Whoami)
from shared.signing import HEADER_ADMIN_KEY


class AdminError(Exception):
    """A failed admin call; the message says what to do. `code` is the cloud's error code, when it answered one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class AdminKeyRefused(AdminError):
    """The cloud answered 401 to the admin key this client sent."""


KEY_SOURCE = ("check that BRANCHSYNC_ADMIN_KEY holds this deployment's admin key: the Key Vault secret "
              "branchsync-admin-key, which `azd env get-value BRANCHSYNC_ADMIN_KEY` prints on the PC that "
              "deployed it (or, on a dev host, the key it was started with)")
CREDENTIAL_SOURCE = ("check BRANCHSYNC_CREDENTIAL: it holds the head-office credential an administrator gave you "
                     "(branchsync-admin people add), whole, beginning " + CREDENTIAL_PREFIX)
# How the cloud begins its 401 when its own admin key setting is unusable: then no key can be right.
_CLOUD_KEY_UNUSABLE = "the admin key is unusable"


_transient = retry(
    retry=retry_if_exception_type((httpx.TransportError,)),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)


class AdminClient:
    def __init__(self, url: str, key: str, transport: httpx.BaseTransport | None = None, timeout: float = 30):
        self._http = httpx.Client(base_url=url.rstrip("/") + "/api", headers={HEADER_ADMIN_KEY: key},
                                  timeout=timeout, transport=transport)
        self.url = url
        self.named = key.startswith(CREDENTIAL_PREFIX)  # a person's credential, not the deployment's admin key

    def close(self) -> None:
        self._http.close()

    def add_branch(self, name: str) -> BranchCreated:
        return self._call("POST", "/manage/branches", BranchCreated, body=BranchCreate(name=name))

    def branches(self) -> BranchList:
        return self._call("GET", "/manage/branches", BranchList)

    def rotate_branch(self, name: str) -> BranchRotation:
        return self._call("POST", f"/manage/branches/{quote(name, safe='')}/rotate", BranchRotation)

    def revoke_branch(self, name: str) -> BranchRevocation:
        return self._call("POST", f"/manage/branches/{quote(name, safe='')}/revoke", BranchRevocation)

    def import_products(self, products: list[Product], deleted: Sequence[str] = ()) -> CatalogWriteResult:
        """One catalog change: write `products` and delete the `deleted` SKUs (at most CATALOG_IMPORT_MAX together)."""
        return self._call("POST", "/manage/catalog", CatalogWriteResult,
                          body=CatalogImport(products=products, deleted=list(deleted)))

    def delete_products(self, skus: Sequence[str]) -> CatalogWriteResult:
        """Delete several SKUs in one request; one the catalog never had deletes none of them (404)."""
        return self.import_products([], skus)

    def delete_product(self, sku: str) -> CatalogWriteResult:
        return self._call("DELETE", f"/manage/catalog/{quote(sku, safe='')}", CatalogWriteResult)

    def compact_catalog(self) -> CatalogCompaction:
        return self._call("POST", "/manage/catalog/compact", CatalogCompaction)

    def write_lake(self, days: list[str] | None = None) -> LakeWriteResult:
        # Up to the Functions host's HTTP limit (230 s): a write of many branches' days takes a while.
        return self._call("POST", "/manage/lake/write", LakeWriteResult, params={"day": ",".join(days)} if days else None,
                          timeout=230)

    def dead_letters(self) -> DeadLetterList:
        return self._call("GET", "/manage/deadletters", DeadLetterList)

    def dead_letter(self, letter_id: str) -> DeadLetterDetail:
        return self._call("GET", f"/manage/deadletters/{quote(letter_id, safe='')}", DeadLetterDetail)

    def replay_dead_letter(self, letter_id: str) -> ReplayResult:
        return self._call("POST", f"/manage/deadletters/{quote(letter_id, safe='')}/replay", ReplayResult)

    def discard_dead_letter(self, letter_id: str) -> DeadLetterInfo:
        return self._call("DELETE", f"/manage/deadletters/{quote(letter_id, safe='')}", DeadLetterInfo)

    def whoami(self) -> Whoami:
        return self._call("GET", "/manage/whoami", Whoami)

    def people(self) -> PeopleList:
        return self._call("GET", "/manage/people", PeopleList)

    def add_person(self, name: str, roles: list[Role]) -> PersonCreated:
        return self._call("POST", "/manage/people", PersonCreated, body=PersonCreate(name=name, roles=roles))

    def revoke_person(self, name: str) -> PersonRevocation:
        return self._call("POST", f"/manage/people/{quote(name, safe='')}/revoke", PersonRevocation)

    def audit(self, since: str | None = None, who: str | None = None, page_size: int = 1000) -> Iterator:
        for page in self._pages("/manage/audit", AuditPage, {"since": since, "who": who}, page_size):
            yield from page.entries

    def sales(self, branch: str | None = None, page_size: int = 1000) -> Iterator[AppliedSale]:
        for page in self._pages("/manage/sales", SalesExportPage, {"branch": branch}, page_size):
            yield from page.sales

    def price_differences(self, branch: str | None = None, since: str | None = None,
                          page_size: int = 5000) -> Iterator[PriceDifference]:
        """Sold lines the current catalog disagrees with; each page reads the catalog index once, so pages are large."""
        for page in self._pages("/manage/reports/price-differences", PriceDifferencePage,
                                {"branch": branch, "since": since}, page_size):
            yield from page.differences

    def report(self, name: str, first: str, last: str, branch: str | None = None, by: str | None = None) -> ReportTable:
        """A report from the day summaries: "sales" (grouped `by`), "shifts" or "exceptions"."""
        query = {k: v for k, v in {"from": first, "to": last, "branch": branch, "by": by}.items() if v}
        return self._call("GET", f"/manage/reports/{quote(name, safe='')}", ReportTable, params=query)

    def rebuild_summaries(self, branch: str | None = None, from_lake: bool = False) -> SummaryRebuild:
        params = {k: v for k, v in {"branch": branch, "from": "lake" if from_lake else None}.items() if v}
        return self._call("POST", "/manage/reports/rebuild", SummaryRebuild, params=params or None, timeout=230)

    def _pages(self, path: str, answer: type[BaseModel], params: dict, page_size: int) -> Iterator:
        """Follow `next` until it is null; None-valued params are left out."""
        after = None
        while True:
            query = {k: v for k, v in {**params, "limit": str(page_size), "after": after}.items() if v}
            page = self._call("GET", path, answer, params=query)
            yield page
            if not page.next:
                return
            after = page.next

    def _call(self, method: str, path: str, answer: type[BaseModel], body: BaseModel | None = None,
              params: dict | None = None, timeout: float | None = None):
        try:
            resp = self._send(method, path, body, params, timeout)
        except httpx.TransportError as exc:
            raise AdminError(f"cannot reach the cloud at {self.url} ({type(exc).__name__}); check the URL and that it is running") from exc
        if resp.status_code == 401:
            raise AdminKeyRefused(_refusal_message(resp, self.named))
        if resp.status_code >= 400:
            raise _refused(resp)
        try:
            return answer.model_validate_json(resp.content)
        except ValidationError as exc:
            raise AdminError(f"the cloud sent an answer this CLI does not understand ({exc.error_count()} problems); upgrade branchsync-admin") from exc

    @_transient
    def _send(self, method, path, body, params, timeout=None) -> httpx.Response:
        content = body.model_dump_json().encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        return self._http.request(method, path, content=content, params=params, headers=headers,
                                  timeout=timeout or self._http.timeout)


def _refusal_message(resp: httpx.Response, named: bool = False) -> str:
    """A 401 to an admin call. The client always sends a key (the CLI stops before when none is
    set), so the cloud's generic "need the header with the admin key" would mislead here."""
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = ""
    if named:
        return f"{message or 'the cloud refused this head-office credential'} (HTTP 401): {CREDENTIAL_SOURCE}"
    if message.startswith(_CLOUD_KEY_UNUSABLE):
        return f"the cloud cannot check any admin key: {message} (HTTP 401)"
    return f"the cloud refused the admin key (HTTP 401): {KEY_SOURCE}, and try again"


def _refused(resp: httpx.Response) -> AdminError:
    try:
        err = resp.json()["error"]
        return AdminError(f"{err['message']} ({err['code']}, HTTP {resp.status_code})", str(err["code"]))
    except (ValueError, KeyError, TypeError):
        return AdminError(f"the cloud answered HTTP {resp.status_code}: {resp.text[:200]}")
