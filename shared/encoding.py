"""Queue message encoding: framed, signed, compressed, base64 as the Functions trigger expects.

A message body (after base64) is:

    b"BSQ1" | u8 len(branch) | branch (ASCII) | 32-byte HMAC | zlib(JSON of SalesBatch)

The HMAC covers everything before it plus the compressed JSON, so a forged or
damaged message is refused before it is decompressed.

A till packs its stored events without building models again (`Packer`): each event's JSON
is what `Sale.model_dump_json()` wrote when the till recorded it, and a batch's JSON is its
header and those texts joined, byte for byte what `SalesBatch.model_dump_json()` gives. The
compression is libdeflate's (the `deflate` package), which writes the same zlib format the
cloud opens with the zlib module: at level 8 it takes about a quarter of the time of zlib at
level 9 on sales batches and makes them about 4% smaller. Both the branch and the cloud
install it (pyproject.toml, function_app/requirements.txt).
"""

import base64
import binascii
import bisect
import hmac
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import deflate
import pydantic_core
from pydantic import ValidationError

from . import limits
from .errors import ContractError, ErrorCode
from .models import BRANCH_RE, Sale, SalesBatch, describe_errors
from .signing import mac

MAGIC = b"BSQ1"
MAC_BYTES = 32
COMPRESS_LEVEL = 8


def compress(raw: bytes) -> bytes:
    """zlib-format compression of a batch's JSON (see the module docstring for why libdeflate)."""
    return deflate.zlib_compress(raw, COMPRESS_LEVEL)


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
    return _framed(batch.branch, compress(batch.model_dump_json().encode()), secret)


def _framed(branch: str, compressed: bytes, secret: str) -> str:
    head = Frame(branch, b"", compressed).signed_part()
    return to_queue_text(head + mac(secret, head + compressed) + compressed)


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


@dataclass(frozen=True)
class WireEvent:
    """One event as a batch carries it: its number, its record version and its JSON
    (`Sale.model_dump_json()`, as the till stored it when it recorded the event)."""

    seq: int
    is_v3: bool
    json: str

    @classmethod
    def of(cls, sale: Sale) -> "WireEvent":
        return cls(sale.seq, sale.is_v3, sale.model_dump_json())


def batch_version(generation: int, is_v3: bool) -> int:
    """The lowest batch version that carries such events (what `SalesBatch.of` chooses)."""
    return 3 if is_v3 else 1 if generation == 1 else 2


def batch_head(branch: str, generation: int, is_v3: bool, sent_at: datetime) -> str:
    """The JSON of a `SalesBatch` up to its first sale, as `SalesBatch.model_dump_json()` writes it."""
    v = batch_version(generation, is_v3)
    sent = pydantic_core.to_json(sent_at.astimezone(timezone.utc)).decode()
    return (f'{{"v":{v},"branch":{pydantic_core.to_json(branch).decode()},'
            + (f'"generation":{generation},' if v != 1 else "") + f'"sent_at":{sent},"sales":[')


class Packer:
    """Packs ascending events of one generation into as few queue messages as fit `budget`, as they come.

    `add` takes the next events and returns the messages they filled; `finish` returns the
    rest, part-filled. Each message is compressed once when the compression ratio of the
    last one predicts it well (the sales of one till compress alike), twice or three times
    when it did not (the first message, a change of density); a message that came out under
    `FULL` of the budget takes more events. A message carries one record version (a batch
    is v3 or not): where the version changes along the events, a new message starts.
    `ratio` (compressed bytes per JSON character) starts the guess; `self.ratio` is the
    last one measured, for the next packer.
    """

    MARGIN = 0.97  # aim this far under the budget, so that the guess fits
    FULL = 0.9  # a fitting message under this share of the budget is tried with more events
    FIRST_RATIO = 0.25  # a guess on the safe side for JSON of sales

    def __init__(self, branch: str, secret: str, clock: Callable[[], datetime], *, generation: int = 1,
                 budget: int = limits.QUEUE_MESSAGE_BUDGET_CHARS, ratio: float | None = None, set_aside: bool = False):
        # `secret` signs each message as it is made: a caller whose secret was rotated sets it anew.
        self.branch, self.secret, self.clock, self.generation = branch, secret, clock, generation
        # An event that does not fit even alone: raised as OVERSIZED_MESSAGE, or with `set_aside`
        # kept in `aside` with the length of its message alone, and the events behind it packed.
        self.set_aside = set_aside
        self.aside: list[tuple[object, int]] = []
        # base64 turns every 3 bytes into 4 characters; the frame's head and MAC come first.
        self.room = (budget // 4) * 3 - len(MAGIC) - 1 - len(branch.encode()) - MAC_BYTES
        self.ratio = ratio or self.FIRST_RATIO
        self._pending: list = []

    def add(self, events: Iterable) -> list[tuple[list, str]]:
        """Messages filled once these events (ascending seq, after the ones added before) are added."""
        self._pending += events
        return self._messages(final=False)

    def finish(self) -> list[tuple[list, str]]:
        """Messages for every event not yet packed."""
        return self._messages(final=True)

    def _messages(self, final: bool) -> list[tuple[list, str]]:
        out = []
        while self._pending:
            first = self._pending[0].is_v3
            end = next((i for i, e in enumerate(self._pending) if e.is_v3 != first), len(self._pending))
            try:
                packed = self._fit(end, closed=final or end < len(self._pending))
            except _Alone as alone:
                if not self.set_aside:
                    raise ContractError(ErrorCode.OVERSIZED_MESSAGE,
                                        f"sale {self._pending[0].seq} alone does not fit in a queue message") from None
                self.aside.append((self._pending.pop(0), alone.size))
                continue
            if packed is None:
                break
            del self._pending[:len(packed[0])]
            out.append(packed)
        return out

    def _fit(self, end: int, closed: bool) -> tuple[list, str] | None:
        """The next message from the first `end` pending events (one version); None: wait for more."""
        events = self._pending
        head = batch_head(self.branch, self.generation, events[0].is_v3, self.clock())
        # chars[k]: JSON characters of a batch of the first k events.
        chars = [len(head) + 2]
        for e in events[:min(end, limits.BATCH_MAX_SALES)]:
            chars.append(chars[-1] + len(e.json) + 1)
        cap = len(chars) - 1
        growable = cap == end and not closed  # more events may come to fill it

        def count_for(ratio: float) -> int:
            return bisect.bisect_right(chars, self.room * self.MARGIN / ratio) - 1

        k = count_for(self.ratio)
        if k >= cap and growable:
            return None
        fits, fails = 0, cap + 1
        best = None
        k = min(max(k, 1), cap)
        while True:
            raw = (head + ",".join(e.json for e in events[:k]) + "]}").encode()
            compressed = compress(raw)
            self.ratio = max(len(compressed), 1) / chars[k]
            if len(compressed) <= self.room and len(raw) <= limits.BATCH_MAX_JSON_BYTES:
                fits, best = k, (events[:k], _framed(self.branch, compressed, self.secret))
                if len(compressed) >= self.room * self.FULL:
                    return best
                k = count_for(self.ratio)
                if k >= cap and growable:
                    return None
            else:
                fails = k
                if k == 1:
                    raise _Alone(len(_framed(self.branch, compressed, self.secret)))
                k = count_for(self.ratio)
            k = min(max(k, fits + 1), fails - 1)
            if k <= fits:
                return best


class _Alone(Exception):
    """The first pending event does not fit in a message alone; `size`: its message's length."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def pack_sales(branch: str, sales: Sequence[Sale], secret: str, sent_at: datetime,
               budget: int = limits.QUEUE_MESSAGE_BUDGET_CHARS, generation: int = 1) -> list[tuple[list[Sale], str]]:
    """Split ascending sales of one generation into as few messages as fit the size budget.

    Returns (sales, message text) pairs in seq order (see `Packer`).
    """
    by_seq = {s.seq: s for s in sales}
    packer = Packer(branch, secret, lambda: sent_at, generation=generation, budget=budget)
    packed = packer.add([WireEvent.of(s) for s in sales]) + packer.finish()
    return [([by_seq[e.seq] for e in events], text) for events, text in packed]
