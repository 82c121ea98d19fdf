"""HMAC-SHA256 signatures over everything a branch sends.

Each branch has its own secret from enrollment. Requests are signed over method,
path, sorted query, time, a nonce and the body hash; queue messages over their
framed, compressed body. Verification uses constant-time comparison.
"""

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from urllib.parse import quote

from .errors import ContractError, ErrorCode
from .limits import AUTH_HEADER_MAX_CHARS, CLOCK_SKEW_SECONDS, TIMESTAMP_MAX_DIGITS

HEADER_BRANCH = "X-Branchsync-Branch"
HEADER_TIME = "X-Branchsync-Time"
HEADER_NONCE = "X-Branchsync-Nonce"
HEADER_SIGNATURE = "X-Branchsync-Signature"
HEADER_ADMIN_KEY = "X-Branchsync-Admin-Key"
# The cloud stores each nonce as a table key: hex only, and long enough never to repeat by chance.
NONCE_RE = re.compile(r"[0-9a-f]{16,64}")


def new_secret() -> str:
    """A fresh branch secret: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def secret_bytes(secret: str) -> bytes:
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))


def new_nonce() -> str:
    return secrets.token_hex(16)


def mac(secret: str, data: bytes) -> bytes:
    return hmac.new(secret_bytes(secret), data, hashlib.sha256).digest()


def canonical_request(method: str, path: str, query: Mapping[str, str], timestamp: str, nonce: str, body: bytes) -> bytes:
    query_part = "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in sorted(query.items()))
    return "\n".join(
        [method.upper(), path, query_part, timestamp, nonce, hashlib.sha256(body).hexdigest()]
    ).encode()


def sign_request(secret: str, branch: str, method: str, path: str, query: Mapping[str, str], body: bytes, now: float) -> dict[str, str]:
    """The headers that authenticate one branch request."""
    timestamp = str(int(now))
    nonce = new_nonce()
    signature = mac(secret, canonical_request(method, path, query, timestamp, nonce, body)).hex()
    return {HEADER_BRANCH: branch, HEADER_TIME: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}


def verify_request(secret: str, headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str], body: bytes, now: float) -> None:
    """Raise ContractError unless the headers carry a valid, timely signature."""
    verify_signature(secret, headers.get(HEADER_TIME, ""), headers.get(HEADER_NONCE, ""), headers.get(HEADER_SIGNATURE, ""),
                     method, path, query, body, now)


def verify_signature(secret: str, timestamp: str, nonce: str, signature: str, method: str, path: str,
                     query: Mapping[str, str], body: bytes, now: float) -> None:
    """verify_request over the signature headers' values as sent ("" for one that is absent)."""
    # isdigit() alone admits "²" and other digits int() refuses; ASCII and bounded, or not signed.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= TIMESTAMP_MAX_DIGITS) or not nonce or not signature:
        raise ContractError(ErrorCode.UNAUTHENTICATED, "request is not signed: enroll this branch and sync with branchsync")
    if not NONCE_RE.fullmatch(nonce):
        raise ContractError(ErrorCode.UNAUTHENTICATED, f"{HEADER_NONCE} must be 16 to 64 lowercase hex digits; sync with branchsync")
    if len(signature) > AUTH_HEADER_MAX_CHARS or not signature.isascii():
        raise ContractError(ErrorCode.BAD_SIGNATURE, "request signature headers are malformed; sync with branchsync")
    skew = int(timestamp) - now
    if abs(skew) > CLOCK_SKEW_SECONDS:
        raise ContractError(
            ErrorCode.CLOCK_SKEW,
            f"branch clock is {abs(int(skew))} s {'ahead of' if skew > 0 else 'behind'} the cloud; set the branch PC's clock right and sync again",
        )
    try:
        canonical = canonical_request(method, path, query, timestamp, nonce, body)
    except UnicodeEncodeError:  # a lone surrogate in the path or query: no branch signed that
        raise ContractError(ErrorCode.BAD_SIGNATURE, "request path or query is not valid text, so it cannot be signed") from None
    if not hmac.compare_digest(mac(secret, canonical).hex(), signature):
        raise ContractError(ErrorCode.BAD_SIGNATURE, "request signature does not match this branch's secret; re-enroll the branch")
