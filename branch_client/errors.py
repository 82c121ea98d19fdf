"""The branch's exception tree: stable codes, exit codes, messages that say what to do.

    BranchSyncError                 code                exit
    +-- BadInput (ValueError)       bad_input           2
    |   +-- BadSaleInput            bad_sale_input      2
    |   +-- BadEnrollmentCode       bad_enrollment_code 2
    |   +-- AlreadyEnrolled         already_enrolled    2
    +-- NotEnrolled                 not_enrolled        3
    +-- SyncAlreadyRunning          sync_running        4
    +-- TaskSchedulerError          task_scheduler      1   schtasks is missing or refused (not an administrator?)
    +-- StoreError                  store_error         1
    |   +-- StoreTooNew             store_too_new       1
    +-- CloudError                  cloud_error         1
        +-- CloudUnreachable        cloud_unreachable   1
        +-- CloudRefused            <the cloud's code>  1   (4xx with {"error": {code, message}})
        |   +-- EnrollmentRefused   enrollment_invalid  2   the code is unknown, used or expired: a new one is needed
        |   +-- BranchRevoked       branch_revoked      5   head office revoked this till
        +-- CloudBadAnswer          cloud_bad_answer    1

Errors from httpx, azure-storage-queue and SQLite are mapped to these at the
boundary (`raise ... from`), so the CLI only ever has to know this tree. Exit code 1 means
"nothing is lost, try again later" (the next sync retries); a refusal that retrying cannot
cure never uses it.
"""

from shared.errors import ErrorCode


class BranchSyncError(Exception):
    """Base of every error the branch reports; `str(err)` is one line for the user."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadInput(BranchSyncError, ValueError):
    code = "bad_input"
    exit_code = 2


class BadSaleInput(BadInput):
    """A sale or void that cannot be recorded; nothing was stored."""

    code = "bad_sale_input"


class BadEnrollmentCode(BadInput):
    code = "bad_enrollment_code"


class AlreadyEnrolled(BadInput):
    code = "already_enrolled"


class NotEnrolled(BranchSyncError):
    code = "not_enrolled"
    exit_code = 3

    def __init__(self, message: str = "this branch is not enrolled: ask head office for an enrollment code "
                                      "and run 'branchsync enroll CODE'"):
        super().__init__(message)


class SyncAlreadyRunning(BranchSyncError):
    code = "sync_running"
    exit_code = 4

    def __init__(self, message: str = "a sync is already running for this branch; "
                                      "wait for it to finish (nothing to do)"):
        super().__init__(message)


class TaskSchedulerError(BranchSyncError):
    code = "task_scheduler"


class StoreError(BranchSyncError):
    code = "store_error"


class StoreTooNew(StoreError):
    code = "store_too_new"


class CloudError(BranchSyncError):
    """Talking to the cloud failed; sales stay pending and the next sync tries again."""

    code = "cloud_error"


class CloudUnreachable(CloudError):
    code = "cloud_unreachable"


class CloudRefused(CloudError):
    """The cloud answered with an error body; `code` is the cloud's stable error code."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"cloud refused ({self.code}): {self.message}"


class EnrollmentRefused(CloudRefused):
    """The cloud does not take this enrollment code (unknown, used or expired): trying again will not help."""

    exit_code = 2

    def __init__(self, message: str, status: int | None = None):
        super().__init__(ErrorCode.ENROLLMENT_INVALID, message, status)


class BranchRevoked(CloudRefused):
    """Head office revoked this till: syncing again will not help, a person has to act."""

    exit_code = 5

    def __init__(self, message: str, status: int | None = None):
        super().__init__(ErrorCode.BRANCH_REVOKED, message, status)

    def __str__(self) -> str:
        return self.message


# Cloud error codes that have a class of their own; every other one is a plain CloudRefused.
REFUSALS: dict[str, type[CloudRefused]] = {ErrorCode.BRANCH_REVOKED: BranchRevoked,
                                           ErrorCode.ENROLLMENT_INVALID: EnrollmentRefused}


class CloudBadAnswer(CloudError):
    code = "cloud_bad_answer"
