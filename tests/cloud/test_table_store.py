"""The Table Storage adapter against a real Azurite: its entity layout and how SDK errors map.

What every store promises (conflicts, transactions, paging, costs) is in test_store_contract.py.
"""

import os
import random
import re

import pytest

from branchsync_cloud.catalog import PROPERTY_MAX_BYTES, BucketWrite, CatalogTxn, Counter, IndexEntry, encode_bucket
from branchsync_cloud.store import StorageError, StoreUnavailable
from branchsync_cloud.table_store import CATALOG, CATALOG_PK, TableStore
from headoffice.stand_ins import free_port


@pytest.fixture
def store(table_store) -> TableStore:
    return table_store


@pytest.mark.azurite
def test_a_bucket_larger_than_one_binary_property_is_stored_in_several(store):
    rng = random.Random(1)
    number = 7
    entries = {f"S{i:06d}": IndexEntry(i + 1, "%032x" % rng.getrandbits(128)) for i in range(8000)}
    data = encode_bucket(entries)
    assert len(data) > 2 * PROPERTY_MAX_BYTES
    txn = CatalogTxn(counter=Counter(8000), buckets=(BucketWrite(number, entries, data),))
    _, written = store.commit_catalog(store.get_catalog_counter(), txn, {})
    assert store.get_catalog_index([number])[number] == written[number]
    assert store.get_catalog_index([number])[number].entries == entries


@pytest.mark.azurite
def test_rows_of_the_old_one_row_per_version_layout_are_reported_clearly(store):
    store.get_catalog_counter()  # creates the table
    store._table(CATALOG).create_entity({"PartitionKey": CATALOG_PK, "RowKey": "v000000000001", "version": 1, "sku": "A"})
    with pytest.raises(StorageError, match="old one-row-per-version layout"):
        store.read_catalog(0, 1000)


@pytest.mark.azurite
def test_storage_that_cannot_be_reached_raises_store_unavailable(storage):
    dead = re.sub(r"TableEndpoint=http://127.0.0.1:\d+", f"TableEndpoint=http://127.0.0.1:{free_port()}", storage)
    store = TableStore(dead, "t" + os.urandom(4).hex(), retry_total=0)
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.get_branch("b1")


def test_a_missing_connection_string_is_reported_as_unavailable():
    with pytest.raises(StoreUnavailable, match="AzureWebJobsStorage"):
        TableStore("")
