"""`make faults`: every fault scenario at full trial counts against freshly started stand-ins.

    python -m tests.faults.run_all [--quick] [--only NAME] [--seed N] [--keep]

Prints a table (scenario, trials, faults injected, sales recorded, sales lost, sales
duplicated) and the total time; exits 1 if any sale was lost or duplicated or any
reconciliation check failed, 2 if the run itself broke.
"""

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .harness import Stack, TrialResult
from .scenarios import all_scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few trials per scenario (as in the pytest part)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this scenario (repeatable)")
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed; trial i uses seed+i (default 1; with --quick, the pytest part's seeds)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, branch databases)")
    args = parser.parse_args(argv)
    console = Console(width=130)
    scenarios = all_scenarios(quick=args.quick)
    if args.only:
        unknown = set(args.only) - {s.name for s in scenarios}
        if unknown:
            console.print(f"unknown scenario(s) {sorted(unknown)}; known: {[s.name for s in scenarios]}")
            return 2
        scenarios = [s for s in scenarios if s.name in args.only]

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="branchsync-faults-"))
    console.print(f"work folder {workdir}")
    stack = Stack.start(workdir)
    rows: list[tuple[str, int, TrialResult, float]] = []
    broken = False
    try:
        stack.ensure_catalog()
        for scenario in scenarios:
            n = scenario.quick_trials if args.quick else scenario.trials
            if args.quick and args.seed is None:
                seeds = list(scenario.quick_seeds)
            else:
                seeds = [(args.seed or 1) + i for i in range(n)]
            t0 = time.monotonic()
            console.print(f"[bold]{scenario.number}. {scenario.name}[/bold]: {n} trials, seeds "
                          f"{', '.join(map(str, seeds)) if n <= 5 else f'{seeds[0]}..{seeds[-1]}'}")
            try:
                result = scenario.run_many(stack, seeds)
            except Exception:
                broken = True
                result = TrialResult(problems=[f"the scenario broke:\n{traceback.format_exc()}"])
            if not result.faults_injected:
                result.problems.append("the scenario injected no fault: it proved nothing")
            rows.append((scenario.name, n, result, time.monotonic() - t0))
            for p in result.problems:
                console.print(f"  [red]problem[/red] {p}", markup=True, highlight=False)
    finally:
        stack.stop()
        if not args.keep and not broken and all(r.ok for _, _, r, _ in rows):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            console.print(f"logs and branch databases kept in {workdir}")

    table = Table(title="branchsync fault injection" + (" (--quick)" if args.quick else ""))
    for col in ("scenario", "trials", "faults injected", "sales recorded", "sales lost", "sales duplicated",
                "checks", "time"):
        table.add_column(col, justify="left" if col in ("scenario", "checks") else "right")
    for name, n, r, secs in rows:
        table.add_row(name, str(n), str(r.faults_injected), f"{r.sales_recorded:,}", str(r.sales_lost),
                      str(r.sales_duplicated), "ok" if not r.problems else f"{len(r.problems)} failed",
                      f"{secs:.0f} s")
    console.print(table)
    total = time.monotonic() - started
    console.print(f"total time {total:.0f} s ({total / 60:.1f} min)")
    if broken:
        return 2
    return 0 if all(r.ok for _, _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
