"""Named credentials (people.py) and the audit (audit.py) through the Service over a MemoryStore, with their storage costs."""

from datetime import timedelta

import pytest

from branchsync_cloud.audit import describe
from branchsync_cloud.roles import Principal
from shared.access import BOOTSTRAP_NAME, VIA_ADMIN_KEY, PersonCreate, Role
from shared.errors import ContractError, ErrorCode

ADMIN = Principal(BOOTSTRAP_NAME, frozenset({Role.ADMIN}), VIA_ADMIN_KEY)


def add(service, name="rahima", *roles):
    return service.create_person(PersonCreate(name=name, roles=list(roles or [Role.REPORTS])), ADMIN).credential


def refused(service, presented) -> ContractError:
    with pytest.raises(ContractError) as caught:
        service.people.recognise(presented)
    assert caught.value.code == ErrorCode.UNAUTHENTICATED
    return caught.value


def test_an_issued_credential_is_recognised_with_its_roles_in_one_point_read(service):
    credential = add(service, "rahima", Role.CATALOG, Role.REPORTS)
    before = service.store.ops
    who = service.people.recognise(credential)
    assert service.store.ops - before == 1
    assert who == Principal("rahima", frozenset({Role.REPORTS, Role.CATALOG}), "credential")


def test_a_changed_secret_an_unknown_name_and_a_malformed_credential_are_refused(service):
    credential = add(service)
    name_part, secret = credential.rsplit(".", 1)
    for presented in (f"{name_part}.{secret[::-1]}", credential.replace("rahima", "karima"), "bsh1.rahima",
                      "bsh1..x"):
        assert "refused this head-office credential" in refused(service, presented).message


def test_a_revoked_credential_is_refused_from_the_next_request_naming_when_and_who_revoked_it(service, clock):
    credential = add(service)
    clock.now += timedelta(hours=2)
    assert service.revoke_person("rahima", ADMIN).already_revoked is False
    message = refused(service, credential).message
    assert "revoked" in message and f"{clock.now:%Y-%m-%d %H:%M}" in message and "admin-key" in message
    assert service.revoke_person("rahima", ADMIN).already_revoked is True


def test_a_name_is_issued_once_even_after_its_revocation(service):
    add(service)
    service.revoke_person("rahima", ADMIN)
    with pytest.raises(ContractError) as caught:
        add(service)
    assert caught.value.code == ErrorCode.CONFLICT


def test_revoking_nobody_is_not_found_and_says_where_to_look(service):
    with pytest.raises(ContractError) as caught:
        service.revoke_person("nobody", ADMIN)
    assert caught.value.code == ErrorCode.NOT_FOUND and "people list" in caught.value.message


def test_the_secret_is_kept_nowhere_but_in_the_credential_handed_out(service):
    credential = add(service)
    secret = credential.rsplit(".", 1)[1]
    stored = service.store.get_person("rahima")
    assert secret not in repr(stored) and secret not in service.list_people().model_dump_json()


def test_an_audit_entry_is_one_insert_and_reads_back_with_who_role_route_and_result(service, clock):
    before = service.store.ops
    service.audit.record(ADMIN, "branches", "POST", "manage/branches/{name}/revoke", "name=b1", 200, "ok")
    assert service.store.ops - before == 2  # the insert, and creating the table on its first use
    [entry] = service.audit_entries(None, None, None, 10).entries
    assert (entry.who, entry.via, entry.role, entry.route, entry.what, entry.status, entry.result, entry.at) == (
        "admin-key", "admin key", "branches", "manage/branches/{name}/revoke", "name=b1", 200, "ok", clock.now)


def test_the_audit_reads_the_last_seven_days_unless_told_otherwise(service, clock):
    service.audit.record(ADMIN, "reports", "GET", "manage/sales", "", 200, "ok")
    clock.now += timedelta(days=8)
    assert service.audit_entries(None, None, None, 10).entries == []
    assert len(service.audit_entries(clock.now - timedelta(days=9), None, None, 10).entries) == 1


def test_an_audit_cursor_that_is_not_one_is_a_bad_request(service):
    with pytest.raises(ContractError) as caught:
        service.audit_entries(None, None, "'; drop", 10)
    assert caught.value.code == ErrorCode.BAD_REQUEST


def test_what_a_request_asked_summarises_its_body_and_never_echoes_much_of_it():
    body = b'{"name": "rahima", "roles": ["reports", "catalog"], "products": [{"sku": "A"}, {"sku": "B"}]}'
    assert describe({"id": "x1"}, {"branch": "b1"}, body) == "id=x1 branch=b1 name=rahima roles=reports,catalog products=[2]"
    assert describe({}, {}, b"\xff not json") == "body=[10 bytes, not JSON]"
    assert describe({}, {}, b"[" * 100_000) == "body=[100000 bytes, not JSON]"
    assert len(describe({}, {"branch": "b" * 10_000}, b"")) <= 500


def test_what_a_request_asked_escapes_text_that_is_not_printable_in_names_and_values():
    said = describe({"name": "a\udfffb"}, {"x\udfff\n": "v\u2028"}, b'{"k\\udfff": "\\u0000"}')
    said.encode("utf-8")  # a lone surrogate would fail here, and in the audit's JSON
    assert "\n" not in said and "\u2028" not in said and "\\udfff" in said
