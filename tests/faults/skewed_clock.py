"""Run the real `branchsync` CLI with its clock shifted by OFFSET seconds (a test seam).

    python -m tests.faults.skewed_clock OFFSET [branchsync arguments ...]

This is a test seam, not a feature: the branch PC's clock cannot be changed here (setting the
OS clock needs root and would shift every process on the machine, the cloud and Azurite
included). So, in this process only and before any branch module is imported, it shifts:

- `time.time` and `time.time_ns` (the clock `CloudClient` signs requests with: its default
  `clock=time.time` is bound when `branch_client.cloud_client` is imported, i.e. after this);
- `branch_client.store.utcnow` (when sales are recorded, pushed, acknowledged, errors noted),
  patched before `branch_client.sync` and `branch_client.cli` import it, so the sync engine's
  default `clock=utcnow` is the shifted one too.

`time.monotonic` is left alone (durations and timeouts stay real). Then it calls
`branch_client.cli.main()` with the remaining arguments, exactly as the console script does.
"""

import sys
import time
from datetime import datetime, timedelta, timezone


def install(offset: float) -> None:
    """Shift this process's wall clock, as the branch sees it, by `offset` seconds."""
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset
    time.time_ns = lambda: real_time_ns() + int(offset * 1_000_000_000)

    from branch_client import store  # before sync/cli bind `utcnow`

    shift = timedelta(seconds=offset)
    store.utcnow = lambda: datetime.now(timezone.utc) + shift


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m tests.faults.skewed_clock OFFSET [branchsync arguments ...]")
    install(float(args.pop(0)))
    from branch_client import cli

    sys.argv = ["branchsync", *args]
    cli.main()


if __name__ == "__main__":
    main()
