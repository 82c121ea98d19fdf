"""Enrolling this till with the code head office gave: the rules, then the catalog that lets it sell.

    parse_code      a code that does not decode was mistyped or cut short in pasting: the
                    manager checks it and types it again (head office's code is fine)
    may_enroll      an enrolled home is replaced only with --force
    may_take        a home holding sales of one branch is never enrolled as another
    enroll          the rules in order, the cloud's answer, the identity stored; then, while
                    the cloud is known to be reachable, one sync pulls the catalog, so the
                    till can sell at once. A failed pull leaves the enrollment standing: the
                    catalog comes with the first sync.

`enroll` talks to the cloud only through `connect(url)` and `sync(store)`, the same seams
`branchsync sync` uses, so tests plug in the fake cloud there.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.enrollment import EnrollmentCode, decode_code
from shared.errors import ContractError

from . import status as branch_status
from .errors import AlreadyEnrolled, BadEnrollmentCode, BranchSyncError
from .identity import Identity
from .status import BranchStatus

if TYPE_CHECKING:
    from .cloud_client import CloudClient
    from .store import Store
    from .sync import SyncReport


@dataclass(frozen=True)
class Enrolled:
    branch: str
    cloud_url: str
    acl_problem: str | None          # the data home could not be restricted (Windows); doctor says how
    catalog: "SyncReport | None"     # the first sync's report; None when it failed
    catalog_problem: str | None      # why it failed, in words


def parse_code(text: str) -> EnrollmentCode:
    try:
        return decode_code(text)
    except ContractError as exc:
        raise BadEnrollmentCode(exc.message) from exc


def may_enroll(status: BranchStatus, force: bool) -> None:
    if status.enrolled and not force:
        raise AlreadyEnrolled(f"this home is already enrolled as branch {status.branch} at {status.cloud_url}; "
                              "use --force to replace that identity")


def may_take(status: BranchStatus, branch: str) -> None:
    if status.branch and status.branch != branch and status.sales_recorded:
        raise AlreadyEnrolled(
            f"this home holds {status.sales_recorded} sales of branch {status.branch} and the code is for "
            f"branch {branch}; enroll {branch} in its own home (--home DIR) with a new code")


def enroll(store: "Store", code: str, *, force: bool,
           connect: Callable[[str], AbstractContextManager["CloudClient"]],
           sync: Callable[["Store"], "SyncReport"] | None,
           secure: Callable[[Path], str | None]) -> Enrolled:
    """Enroll the store's home with `code`; `secure(home)` restricts the folder before the secret lands in it.

    `sync` None: enroll only, the catalog comes with the first sync.
    """
    parsed = parse_code(code)
    before = branch_status.read(store)
    may_enroll(before, force)
    with connect(parsed.url) as client:
        answer = client.enroll(parsed.token)
    may_take(before, answer.branch)
    acl_problem = secure(Path(store.home))
    store.save_identity(Identity(branch=answer.branch, cloud_url=parsed.url, secret=answer.secret))
    if sync is None:
        return Enrolled(answer.branch, parsed.url, acl_problem, None, None)
    try:
        report, problem = sync(store), None
    except BranchSyncError as exc:  # the sync recorded why (status, doctor); enrollment stands
        report, problem = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the identity is stored and the next sync retries
        report, problem = None, f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
    return Enrolled(answer.branch, parsed.url, acl_problem, report, problem)
