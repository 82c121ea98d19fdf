"""The one-time enrollment code an admin hands to a new branch.

`BSE1.` + base64url(JSON {"url": <cloud base URL>, "token": <one-time token>, "check": <8 hex>}),
padding stripped, so the code is one copy-pasteable word carrying where the cloud is and the
token that proves the admin created the branch. `check` is the first 8 hex digits of
SHA-256 over url, a line feed and token: a character mistyped in the URL or the token still
decodes, and would otherwise reach the wrong host or the cloud as an unknown code, so the
branch says "mistyped" before asking anyone. Codes without `check` (printed before it
existed) are accepted as they are.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ContractError, ErrorCode
from .models import EnrollRequest

PREFIX = "BSE1."
# A real code is about 150 characters; a URL of up to ~1,500 still fits.
CODE_MAX_CHARS = 2048


@dataclass(frozen=True)
class EnrollmentCode:
    url: str
    token: str


def code_check(url: str, token: str) -> str:
    return hashlib.sha256(f"{url}\n{token}".encode()).hexdigest()[:8]


def encode_code(url: str, token: str) -> str:
    raw = json.dumps({"url": url, "token": token, "check": code_check(url, token)}, separators=(",", ":")).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_code(code: str) -> EnrollmentCode:
    """Parse a code as typed or pasted by a person; ContractError(enrollment_invalid) says what is wrong.

    Every code head office prints decodes, so one that does not was mistyped or cut short:
    the message asks to check it and type it again, not for a new code (the cloud alone can
    tell a used or expired code, and says so).
    """
    text = code.strip()
    if len(text) > CODE_MAX_CHARS:
        raise _invalid(f"it is longer than {CODE_MAX_CHARS} characters")
    if not text.startswith(PREFIX):
        raise _invalid("it does not start with BSE1.")
    body = text[len(PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # deep nesting: no real code is nested at all
        raise _invalid("it is damaged (not base64url JSON)") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("token"), str):
        raise _invalid("it lacks the cloud URL or the token")
    try:
        parts = urlsplit(data["url"])
    except ValueError:  # e.g. "http://[::1": urlsplit refuses a broken IPv6 host
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(f"its cloud URL {data['url']!r} is not an http(s) URL")
    try:
        EnrollRequest(token=data["token"])
    except ValueError:
        raise _invalid("its token is malformed") from None
    if "check" in data and data["check"] != code_check(data["url"], data["token"]):
        raise _invalid("its check digits do not match the rest of it")
    return EnrollmentCode(url=data["url"].rstrip("/"), token=data["token"])


def _invalid(why: str) -> ContractError:
    return ContractError(ErrorCode.ENROLLMENT_INVALID, f"this enrollment code looks mistyped: {why}; check it "
                                                       "against the one head office gave you and type it again")
