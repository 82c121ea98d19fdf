"""Stable error codes shared by both sides, and the exception that carries them.

Codes are part of the wire contract: the HTTP API returns them in
`{"error": {"code": ..., "message": ...}}` and dead-letter records store them.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHENTICATED = "unauthenticated"
    BAD_SIGNATURE = "bad_signature"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_BRANCH = "unknown_branch"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    ENROLLMENT_INVALID = "enrollment_invalid"
    MALFORMED_MESSAGE = "malformed_message"
    OVERSIZED_MESSAGE = "oversized_message"
    UNAVAILABLE = "unavailable"
    # A sale number arrived with different contents than the sale applied under it:
    # two PCs are syncing as one branch (a copied database).
    CLONED_TILL = "cloned_till"
    # A signed request whose nonce the cloud has already seen: a captured request sent again.
    REPLAYED = "replayed"
    # Head office revoked the branch: its requests are refused and its queued messages dead-lettered.
    BRANCH_REVOKED = "branch_revoked"
    # A void the cloud refuses (the rest of its message is applied): it names no sale of this
    # till the cloud holds, the sale was voided already, or its total is not minus the sale's.
    VOID_UNKNOWN_SALE = "void_unknown_sale"
    VOID_TWICE = "void_twice"
    VOID_WRONG_TOTAL = "void_wrong_total"
    # A void of a sale already refunded in part (refund the rest instead).
    VOID_OF_REFUNDED = "void_of_refunded"
    # A refund the cloud refuses (the rest of its message is applied): it names no sale of
    # this till the cloud holds, the sale was voided, or it returns more than was sold and
    # not yet refunded.
    REFUND_UNKNOWN_SALE = "refund_unknown_sale"
    REFUND_OF_VOIDED = "refund_of_voided"
    REFUND_EXCEEDS_SALE = "refund_exceeds_sale"


HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.MALFORMED_MESSAGE: 400,
    ErrorCode.OVERSIZED_MESSAGE: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.BAD_SIGNATURE: 401,
    ErrorCode.CLOCK_SKEW: 401,
    ErrorCode.REPLAYED: 401,
    ErrorCode.ENROLLMENT_INVALID: 401,
    ErrorCode.UNKNOWN_BRANCH: 403,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.BRANCH_REVOKED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.CLONED_TILL: 409,
    ErrorCode.VOID_UNKNOWN_SALE: 409,
    ErrorCode.VOID_TWICE: 409,
    ErrorCode.VOID_WRONG_TOTAL: 422,
    ErrorCode.VOID_OF_REFUNDED: 409,
    ErrorCode.REFUND_UNKNOWN_SALE: 409,
    ErrorCode.REFUND_OF_VOIDED: 409,
    ErrorCode.REFUND_EXCEEDS_SALE: 422,
    ErrorCode.UNAVAILABLE: 503,
}


class ContractError(Exception):
    """Input that breaks the wire contract; `message` says what to do about it."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_body(self) -> dict:
        return {"error": {"code": str(self.code), "message": self.message}}


def shown(value: str, limit: int = 40) -> str:
    """A client's value as quoted in an error: escaped by repr, and shortened so it is never echoed whole."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
