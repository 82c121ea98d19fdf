"""`make demo`: the whole loop on local stand-ins, through the real console scripts.

Starts Azurite and the cloud dev host, registers three branches, imports a sample
catalog, lets the branches sell while the cloud is down, brings it back; head office
reprices one product the branches sold, deletes another and rotates a branch's secret;
every branch syncs. Prints a reconciliation per branch and the price-difference report,
and ends with head office's morning report of the three branches (`report sales --by
branch`, also written as an HTML page of charts). Stops everything it started; exits
non-zero if the books do not balance, the report misses a line or the day summaries
disagree with the applied sales.
"""

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from demo.sample_catalog import write_catalog_csv
from headoffice.stand_ins import ROOT, free_port, start_azurite, start_cloud
from shared.money import format_taka

BRANCHES = ["dhaka-gulshan", "chattogram-gec", "sylhet-zindabazar"]
SALES_PER_BRANCH = 12
BIN = Path(sys.executable).parent
BUSINESS_ZONE = ZoneInfo("Asia/Dhaka")  # the cloud's default business day
console = Console(width=130)


def run(*args, env, check=True, capture=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, text=True, capture_output=capture)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    admin_key = uuid.uuid4().hex
    rng = random.Random(2026)
    first_day = datetime.now(BUSINESS_ZONE).date()

    console.rule("[bold]1. Starting Azurite and the cloud")
    azurite = start_azurite(work / "azurite")
    port = free_port()
    cloud = start_cloud(work / "cloud", azurite.connection_string, admin_key, port=port)
    env = {**os.environ, "BRANCHSYNC_ADMIN_KEY": admin_key, "BRANCHSYNC_URL": cloud.url}
    console.print(f"Azurite queue :{azurite.queue_port} table :{azurite.table_port}; cloud at {cloud.url}")
    try:
        console.rule("[bold]2. Head office registers branches and imports the catalog")
        homes = {}
        for name in BRANCHES:
            code = run("branchsync-admin", "branch", "add", name, env=env).stdout.strip()
            homes[name] = work / "branches" / name
            run("branchsync", "--home", str(homes[name]), "enroll", code, env=env)
            console.print(f"enrolled {name}")
        catalog = write_catalog_csv(work / "catalog.csv")
        console.print(run("branchsync-admin", "catalog", "import", str(work / "catalog.csv"), env=env).stdout.strip())
        deleted = catalog[5]["sku"]
        run("branchsync-admin", "catalog", "delete", deleted, env=env)
        for name in BRANCHES:
            run("branchsync", "--home", str(homes[name]), "sync", env=env)
        hits = run("branchsync", "--home", str(homes[BRANCHES[0]]), "catalog", "search", "ডাল", env=env).stdout
        console.print(f"branches pulled {len(catalog)} products (and one deletion); a search for ডাল finds "
                      f"{sum('ডাল' in line for line in hits.splitlines())} rows on screen")

        console.rule("[bold]3. The cloud goes down; the branches keep selling")
        cloud.stop()
        live = [p for p in catalog if p["sku"] != deleted]
        sold = Counter()  # sales per SKU: each sale holds a SKU at most once
        for name in BRANCHES:
            for _ in range(SALES_PER_BRANCH):
                items = []
                for product in rng.sample(live, rng.randint(1, 4)):
                    qty = f"{rng.randint(250, 3000) / 1000:.3f}" if product["unit"] == "kg" else str(rng.randint(1, 3))
                    items.append(f"{product['sku']}={qty}")
                    sold[product["sku"]] += 1
                if rng.random() < 0.15:
                    items[0] += "@99.50"  # a manager's price override
                # Mobile money names its wallet and the customer's transaction id.
                txn = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=10))
                run("branchsync", "--home", str(homes[name]), "sale", "add", *items,
                    "--pay", rng.choice(["cash", "cash", "card", f"bkash:{txn}", f"nagad:{txn}"]), env=env)
            run("branchsync", "--home", str(homes[name]), "sale", "void", "2", env=env)
        offline = run("branchsync", "--home", str(homes[BRANCHES[0]]), "sync", env=env, check=False)
        console.print(f"sync while the cloud is down exits {offline.returncode}: {offline.stderr.strip().splitlines()[-1] if offline.stderr.strip() else offline.stdout.strip()}")

        console.rule("[bold]4. The cloud comes back; head office changes the catalog; every branch syncs")
        cloud = start_cloud(work / "cloud", azurite.connection_string, admin_key, port=port)
        # Two products the branches sold while offline: one repriced, one deleted, before they sync.
        repriced, gone = [sku for sku, _ in sold.most_common(2)]
        row = dict(next(p for p in catalog if p["sku"] == repriced))
        old_price, row["price"] = row["price"], f"{float(row['price']) * 1.1 + 1:.2f}"
        with open(work / "reprice.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
        run("branchsync-admin", "catalog", "import", str(work / "reprice.csv"), env=env)
        run("branchsync-admin", "catalog", "delete", gone, env=env)
        console.print(f"head office repriced {repriced} from {old_price} to {row['price']} taka and deleted {gone}; "
                      f"the branches sold them {sold[repriced]} and {sold[gone]} times while offline")
        run("branchsync-admin", "branch", "rotate", BRANCHES[0], env=env)
        console.print(f"head office rotated {BRANCHES[0]}'s secret; the branch picks it up on its next sync")
        for name in BRANCHES:
            run("branchsync", "--home", str(homes[name]), "sync", env=env, capture=False)
        recorded = {name: json.loads(run("branchsync", "--home", str(homes[name]), "status", "--json", env=env).stdout)
                    for name in BRANCHES}
        wanted = {name: recorded[name]["sales_recorded"] for name in BRANCHES}
        deadline = time.monotonic() + 120
        while True:
            listing = json.loads(run("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
            applied = {b["branch"]: b["applied_through"] for b in listing}
            if all(applied.get(n) == wanted[n] for n in BRANCHES) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for name in BRANCHES:  # the next pull carries the acknowledgement
            run("branchsync", "--home", str(homes[name]), "sync", env=env)
            recorded[name] = json.loads(run("branchsync", "--home", str(homes[name]), "status", "--json", env=env).stdout)

        rotated = next(b for b in json.loads(run("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
                       if b["branch"] == BRANCHES[0])
        console.print(f"{BRANCHES[0]} now signs with its new secret (rotation pending: "
                      f"{'yes' if rotated['rotation_pending'] else 'no'})")

        console.rule("[bold]5. Reconciliation")
        exported = [json.loads(line) for line in
                    run("branchsync-admin", "sales", "export", "--format", "jsonl", env=env).stdout.splitlines() if line]
        table = Table("branch", "sales recorded", "sales applied", "recorded total (taka)", "applied total (taka)",
                      "difference", "pending at branch")
        balanced = True
        for name in BRANCHES:
            mine = [e for e in exported if e["branch"] == name]
            rec_n, rec_total = recorded[name]["sales_recorded"], recorded[name]["total_paisa"]
            app_n, app_total = len(mine), sum(e["sale"]["total"] for e in mine)
            diff = rec_total - app_total
            balanced &= diff == 0 and rec_n == app_n and recorded[name]["pending"] == 0
            table.add_row(name, str(rec_n), str(app_n), format_taka(rec_total), format_taka(app_total),
                          format_taka(diff), str(recorded[name]["pending"]))
        console.print(table)
        console.print("[green]The books balance: every sale applied exactly once.[/]" if balanced
                      else "[red]The books do not balance.[/]")

        console.rule("[bold]6. What head office changed under the offline sales")
        report = [json.loads(line) for line in run("branchsync-admin", "report", "price-differences", "--format",
                                                   "jsonl", env=env).stdout.splitlines() if line]
        lines = Counter((r["sku"], r["status"]) for r in report)
        overrides = sum(n for (sku, _), n in lines.items() if sku not in (repriced, gone))
        console.print(f"the price-difference report lists {len(report)} sold lines: {lines[(gone, 'deleted')]} of the "
                      f"deleted {gone}, {lines[(repriced, 'price_differs')]} of the repriced {repriced}, and "
                      f"{overrides} sold at a manager's override price; the sales stay as sold")
        console.print(f"below, the {lines[(gone, 'deleted')] + lines[(repriced, 'price_differs')]} lines of the two "
                      "products head office changed; 'branchsync-admin report price-differences' shows every line")
        shown = Table("branch", "sale/line", "sku", "status", "sold at (taka)", "now (taka)", "difference (taka)")
        for r in report:
            if r["sku"] in (repriced, gone):
                shown.add_row(r["branch"], f"{r['seq']}/{r['line']}", r["sku"], r["status"].replace("_", " "),
                              format_taka(r["sold_price"]), "-" if r["current_price"] is None else format_taka(r["current_price"]),
                              "-" if r["difference"] is None else format_taka(r["difference"]))
        console.print(shown)
        reported = lines[(gone, "deleted")] == sold[gone] and lines[(repriced, "price_differs")] == sold[repriced]
        if not reported:
            console.print("[red]The report misses lines of the changed products.[/]")

        console.rule("[bold]7. Head office's morning report")
        day = datetime.now(BUSINESS_ZONE).date()
        page = work / "report-sales.html"
        days = ("--from", first_day.isoformat(), "--to", day.isoformat())
        by_branch = run("branchsync-admin", "report", "sales", *days, "--by", "branch", "--format", "jsonl", env=env)
        summed = {r["branch"]: r["net_paisa"] for r in map(json.loads, by_branch.stdout.splitlines())}
        agreed = all(summed.get(n) == sum(e["sale"]["total"] for e in exported if e["branch"] == n) for n in BRANCHES)
        console.print(f"$ branchsync-admin report sales --from {first_day} --to {day} --by branch --html {page}")
        sys.stdout.flush()
        run("branchsync-admin", "report", "sales", *days, "--by", "branch", "--html", str(page),
            env={**env, "COLUMNS": str(console.width)}, capture=False)
        console.print(f"the same figures as charts: {page} (one file, opens with no internet); the day is still "
                      "open, so the report is complete only once each branch syncs after midnight")
        console.print("[green]The day summaries agree with the applied sales, to the paisa.[/]" if agreed
                      else "[red]The day summaries disagree with the applied sales.[/]")
        return 0 if balanced and reported and agreed and not rotated["rotation_pending"] else 1
    finally:
        cloud.stop()
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
