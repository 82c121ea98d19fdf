"""Queue message encoding: framed, signed, compressed, base64 as the Functions trigger expects.

A message body (after base64) is:

    b"BSQ1" | u8 len(branch) | branch (ASCII) | 32-byte HMAC | zlib(JSON of SalesBatch)

The HMAC covers everything before it plus the compressed JSON, so a forged or
damaged message is refused before it is decompressed.
"""

import base64
import binascii
import hmac
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from . import limits
from .errors import ContractError, ErrorCode
from .models import BRANCH_RE, Sale, SalesBatch, describe_errors
from .signing import mac

MAGIC = b"BSQ1"
MAC_BYTES = 32


@dataclass(frozen=True)
class Frame:
    branch: str
    signature: bytes
    compressed: bytes

    def signed_part(self) -> bytes:
        raw = self.branch.encode()
        return MAGIC + bytes([len(raw)]) + raw


def to_queue_text(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def from_queue_text(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(ErrorCode.MALFORMED_MESSAGE, "queue message is not base64") from None


def encode_batch(batch: SalesBatch, secret: str) -> str:
    """The queue message text for one batch."""
    compressed = zlib.compress(batch.model_dump_json().encode(), 9)
    head = Frame(batch.branch, b"", compressed).signed_part()
    signature = mac(secret, head + compressed)
    return to_queue_text(head + signature + compressed)


def parse_frame(body: bytes) -> Frame:
    """Split a decoded message into its parts without trusting any of them."""
    if len(body) > limits.QUEUE_MESSAGE_MAX_CHARS:
        raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"message is {len(body)} bytes, more than a queue message can be")
    if not body.startswith(MAGIC) or len(body) < len(MAGIC) + 1:
        raise ContractError(ErrorCode.MALFORMED_MESSAGE, "message is not a branchsync sales batch (bad magic)")
    n = body[len(MAGIC)]
    start = len(MAGIC) + 1
    branch_raw = body[start : start + n]
    sig = body[start + n : start + n + MAC_BYTES]
    compressed = body[start + n + MAC_BYTES :]
    try:
        branch = branch_raw.decode("ascii")
    except UnicodeDecodeError:
        branch = ""
    if not BRANCH_RE.fullmatch(branch) or len(sig) != MAC_BYTES or not compressed:
        raise ContractError(ErrorCode.MALFORMED_MESSAGE, "message frame is truncated or names no valid branch")
    return Frame(branch, sig, compressed)


def signed_by(frame: Frame, secret: str) -> bool:
    """Whether `secret` made the frame's signature (constant-time comparison)."""
    return hmac.compare_digest(mac(secret, frame.signed_part() + frame.compressed), frame.signature)


def open_frame(frame: Frame, secret: str) -> SalesBatch:
    """Verify the signature, then decompress (bounded) and validate the batch."""
    if not signed_by(frame, secret):
        raise ContractError(ErrorCode.BAD_SIGNATURE, f"message signature does not match branch {frame.branch}'s secret")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(frame.compressed, limits.BATCH_MAX_JSON_BYTES + 1)
    except zlib.error:
        raise ContractError(ErrorCode.MALFORMED_MESSAGE, "message body is not valid zlib data") from None
    if len(raw) > limits.BATCH_MAX_JSON_BYTES or inflater.unconsumed_tail:
        raise ContractError(ErrorCode.OVERSIZED_MESSAGE, "message body decompresses beyond the batch limit")
    try:
        batch = SalesBatch.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(ErrorCode.MALFORMED_MESSAGE, f"sales batch is invalid: {describe_errors(exc)}") from None
    if batch.branch != frame.branch:
        raise ContractError(ErrorCode.FORBIDDEN, f"batch claims branch {batch.branch} inside a message signed by {frame.branch}")
    return batch


def pack_sales(branch: str, sales: Sequence[Sale], secret: str, sent_at: datetime,
               budget: int = limits.QUEUE_MESSAGE_BUDGET_CHARS, generation: int = 1,
               guess: int = 1000) -> list[tuple[list[Sale], str]]:
    """Split ascending sales of one generation into as few messages as fit the size budget.

    Returns (sales, message text) pairs in seq order. Each message is grown from an
    estimate and shrunk until it fits, so the cost is a few compressions per message. A
    message carries one record version (a batch is v3 or not, `SalesBatch.of`): where the
    version changes along the sales (a till upgraded with older events still pending), a
    new message starts. `guess`: how many sales the first message is tried with (a caller
    packing round after round passes what filled the last message, so most messages are
    compressed once).
    """
    out: list[tuple[list[Sale], str]] = []
    start = 0
    for end in [i for i in range(1, len(sales)) if sales[i].is_v3 != sales[i - 1].is_v3] + [len(sales)]:
        out += _pack_run(branch, sales[start:end], secret, sent_at, budget, generation, guess)
        start = end
    return out


def _pack_run(branch: str, sales: Sequence[Sale], secret: str, sent_at: datetime, budget: int,
              generation: int, guess: int) -> list[tuple[list[Sale], str]]:
    out: list[tuple[list[Sale], str]] = []
    start = 0
    guess = max(1, guess)
    while start < len(sales):
        count = min(guess, limits.BATCH_MAX_SALES, len(sales) - start)
        while True:
            chunk = list(sales[start : start + count])
            text = encode_batch(SalesBatch.of(branch, generation, sent_at, chunk), secret)
            if len(text) <= budget:
                break
            if count == 1:
                raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"sale {chunk[0].seq} alone does not fit in a queue message")
            count = max(1, min(count - 1, int(count * budget / len(text) * 0.95)))
        out.append((chunk, text))
        start += count
        # Next message: aim at what this one's density suggests would fill the budget.
        guess = max(1, int(count * budget / len(text) * 0.97))
    return out

