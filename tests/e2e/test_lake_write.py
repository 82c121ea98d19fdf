"""`branchsync-admin lake write` against the dev host: the applied sales land in the lake's container.

A till's signed message goes on the Azurite queue, the dev host's poller applies it, and
the admin CLI asks the cloud to write the lake now (what the timer does on its schedule).
"""

import io
import subprocess

import pyarrow.parquet as pq
import pytest
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from branch_client.store import Store
from shared.encoding import encode_batch
from shared.models import SalesBatch
from tests.builders import T0, make_line3, make_sale3
from tests.processes import BIN, cli, enrolled_till, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def test_lake_write_puts_the_applied_days_into_the_lake_and_report_rebuild_folds_them_back(tmp_path, admin_env, cloud, storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    secret = Store(enrolled_till(tmp_path, env, branch_name, f"RICE-{branch_name}", "চাল", "420")).identity().secret
    sales = [make_sale3(n, [make_line3(qty="2", unit_price=42_000)]) for n in (1, 2, 3)]
    QueueClient.from_connection_string(storage, "sales").send_message(
        encode_batch(SalesBatch.of(branch_name, 1, T0, sales), secret))
    lake = ContainerClient.from_connection_string(storage, "lake")
    path = f"sales/date=2026-11-28/branch={branch_name}/part-0.parquet"

    def written():
        out = cli("branchsync-admin", "lake", "write", env=env)
        return out if f"2026-11-28 {branch_name}" in out else None

    out = wait_for(written, timeout=60, every=0.5)  # once the poller has applied the message
    assert out and "lake written:" in out
    first = lake.download_blob(path).readall()
    assert pq.read_table(io.BytesIO(first)).column("net_paisa").to_pylist() == [84_000] * 3
    again = cli("branchsync-admin", "lake", "write", "--day", "2026-11-28", env=env)
    assert f"2026-11-28 {branch_name}" in again and lake.download_blob(path).readall() == first
    rebuilt = cli("branchsync-admin", "report", "rebuild", "--from-lake", "--branch", branch_name, env=env)
    assert f"{branch_name}: 1 days" in rebuilt and "from 3 the data lake's events" in rebuilt
    wrong = subprocess.run([str(BIN / "branchsync-admin"), "lake", "write", "--day", "28/11/2026"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "YYYY-MM-DD" in wrong.stderr

