"""Failpoints: deliberate, seeded faults for the fault-injection suite (tests/faults/).

A no-op unless BRANCHSYNC_FAILPOINTS was set when `configure()` read it, once per worker
process (function_app.py, at import). Its value is a comma-separated list of

    NAME=ACTION[:PROBABILITY[:MAX_PER_KEY]]

for example ``apply.after_commit=raise:0.5:3,apply.before_commit=raise:0.3``. ACTION is
``raise`` (raise FailpointError, a RuntimeError, so the queue retries the message) or
``off``. PROBABILITY (default 1) is drawn from one RNG seeded by BRANCHSYNC_FAILPOINTS_SEED
(default 0), so a run is repeatable. MAX_PER_KEY bounds how often a point fires for the same
key (e.g. one message's branch and seq range), so a retried message eventually gets through
instead of ending in the poison queue.

Every firing is logged at WARNING as ``failpoint fired name=... key=...`` (the suite counts
these lines in the dev host's log). Never set BRANCHSYNC_FAILPOINTS in production.
"""

import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("branchsync.faults")

ENV = "BRANCHSYNC_FAILPOINTS"
SEED_ENV = "BRANCHSYNC_FAILPOINTS_SEED"


class FailpointError(RuntimeError):
    """Raised by a failpoint whose action is `raise`."""


@dataclass(frozen=True)
class Failpoint:
    name: str
    action: str
    probability: float = 1.0
    max_per_key: int | None = None


def parse(spec: str) -> dict[str, Failpoint]:
    points: dict[str, Failpoint] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = item.partition("=")
        fields = rest.split(":")
        action = fields[0].strip() or "raise"
        if action not in ("raise", "off"):
            raise ValueError(f"{ENV}: unknown failpoint action {action!r} in {item!r}")
        probability = float(fields[1]) if len(fields) > 1 and fields[1] else 1.0
        max_per_key = int(fields[2]) if len(fields) > 2 and fields[2] else None
        points[name.strip()] = Failpoint(name.strip(), action, probability, max_per_key)
    return points


class Registry:
    def __init__(self, spec: str = "", seed: int = 0):
        self.points = parse(spec)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._fired: Counter = Counter()

    def hit(self, name: str, key: str = "") -> None:
        point = self.points.get(name)
        if point is None or point.action == "off":
            return
        with self._lock:
            if point.max_per_key is not None and self._fired[(name, key)] >= point.max_per_key:
                return
            if self._rng.random() >= point.probability:
                return
            self._fired[(name, key)] += 1
        log.warning("failpoint fired name=%s key=%s", name, key)
        raise FailpointError(f"failpoint {name} fired ({key})")


_registry: Registry | None = None


def configure(env: Mapping[str, str] = os.environ) -> None:
    """Read BRANCHSYNC_FAILPOINTS once per worker process (function_app.py, at import); unset: no failpoints."""
    global _registry
    spec = env.get(ENV, "")
    _registry = Registry(spec, int(env.get(SEED_ENV, "0") or 0)) if spec else None


def hit(name: str, key: str = "") -> None:
    """Fire failpoint `name` if the configured BRANCHSYNC_FAILPOINTS names it; otherwise do nothing."""
    if _registry is not None:
        _registry.hit(name, key)
