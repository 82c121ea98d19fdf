"""What every Store promises for head-office people and the audit, checked against TableStore on Azurite and MemoryStore."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from branchsync_cloud.store import Conflict, PersonRecord
from shared.access import AuditEntry
# The contract's `store` fixture: each test runs against TableStore on Azurite and both MemoryStores.
from tests.cloud.test_store_contract import NOW, store  # noqa: F401


def person(name: str, *roles: str) -> PersonRecord:
    return PersonRecord(name=name, roles=roles or ("reports",), salt="00" * 16, secret_hash="ab" * 32,
                        created_at=NOW, created_by="admin-key")


def entry(at: datetime, who: str = "rahima", status: int = 200) -> AuditEntry:
    return AuditEntry(at=at, who=who, via="credential", role="reports", method="GET", route="manage/sales",
                      what="branch=b1", status=status, result="ok" if status < 400 else "forbidden")


def test_a_created_person_reads_back_as_written_and_a_second_with_the_name_is_a_conflict(store):
    store.create_person(person("rahima", "reports", "catalog"))
    got = store.get_person("rahima")
    assert got == person("rahima", "reports", "catalog") and got.etag
    with pytest.raises(Conflict):
        store.create_person(person("rahima"))
    assert store.get_person("nobody") is None


def test_revoking_replaces_the_record_and_a_stale_etag_is_a_conflict(store):
    store.create_person(person("karim"))
    first = store.get_person("karim")
    revoked = replace(first, revoked_at=NOW + timedelta(hours=1), revoked_by="admin-key")
    store.replace_person(revoked)
    assert store.get_person("karim").revoked_by == "admin-key"
    with pytest.raises(Conflict):
        store.replace_person(replace(first, revoked_by="someone-else"))


def test_people_are_listed_in_name_order(store):
    for name in ("zaman", "anika", "milon"):
        store.create_person(person(name))
    assert [p.name for p in store.list_people()] == ["anika", "milon", "zaman"]


def test_audit_entries_read_back_oldest_first_from_since_across_months_and_page_with_next(store):
    times = [datetime(2026, 10, 31, 23, 59, tzinfo=timezone.utc) + timedelta(minutes=i) for i in range(5)]
    for at in reversed(times):  # written out of order: they read back in time order
        store.add_audit(entry(at))
    found, more = store.list_audit(times[1], None, None, 2)
    assert [e.at for e in found] == times[1:3] and more
    rest, end = store.list_audit(times[1], more, None, 10)
    assert [e.at for e in rest] == times[3:] and end is None
    assert found[0] == entry(times[1])


def test_audit_entries_can_be_read_for_one_person_only(store):
    for i, who in enumerate(["rahima", "karim", "rahima"]):
        store.add_audit(entry(NOW + timedelta(seconds=i), who))
    found, more = store.list_audit(NOW, None, "rahima", 10)
    assert [e.who for e in found] == ["rahima", "rahima"] and more is None


def test_two_audit_entries_of_the_same_microsecond_are_both_kept(store):
    store.add_audit(entry(NOW, "rahima"))
    store.add_audit(entry(NOW, "karim"))
    found, _ = store.list_audit(NOW, None, None, 10)
    assert sorted(e.who for e in found) == ["karim", "rahima"]
