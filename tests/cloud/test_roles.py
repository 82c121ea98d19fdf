"""The one table of head-office routes and their roles, and the checks over it (pure)."""

import pytest

from branchsync_cloud.roles import ROUTE_ROLES, Principal, check_role, grants, match_route, required_role
from headoffice.devhost import DEFAULT_APP_DIR, discover, load_app
from shared.access import VIA_CREDENTIAL, Role
from shared.errors import ContractError, ErrorCode


def registered_manage_routes() -> set[tuple[str, str]]:
    http, _ = discover(load_app(DEFAULT_APP_DIR))
    found = set()
    for f in http:
        if f.route.startswith("manage/"):
            assert f.methods, f"{f.name} serves every method; a head-office route names its methods"
            found |= {(m, f.route) for m in f.methods}
    return found


def test_every_manage_route_registered_in_function_app_declares_its_role_and_the_table_names_no_other():
    registered = registered_manage_routes()
    assert registered - set(ROUTE_ROLES) == set(), "routes without a role"
    assert set(ROUTE_ROLES) - registered == set(), "roles for routes that do not exist"


def test_every_registered_manage_route_is_matched_back_to_its_own_template():
    for method, template in registered_manage_routes():
        path = "/api/" + template.replace("{name}", "b-1").replace("{sku}", "RICE-5").replace("{id}", "20261128-x")
        assert match_route(method, path) == (template, ROUTE_ROLES[(method, template)])


def test_a_literal_segment_wins_over_a_parameter_and_unknown_paths_match_nothing():
    assert match_route("POST", "/api/manage/catalog/compact")[0] == "manage/catalog/compact"
    assert match_route("DELETE", "/api/manage/catalog/compact")[0] == "manage/catalog/{sku}"
    for method, path in [("GET", "/api/manage/nothing"), ("PUT", "/api/manage/branches"), ("GET", "/manage/branches"),
                         ("POST", "/api/manage/branches//rotate"), ("GET", "/api/manage/branches/x/y/z")]:
        assert match_route(method, path) is None


def test_a_route_missing_from_the_table_is_refused_to_everyone():
    with pytest.raises(ContractError) as caught:
        required_role("POST", "/api/manage/everything")
    assert caught.value.code == ErrorCode.FORBIDDEN and "no" in caught.value.message


def test_only_reading_routes_need_reports_and_changing_ones_need_a_writing_role():
    for (method, template), role in ROUTE_ROLES.items():
        assert (role == Role.REPORTS) == (method == "GET" and not template.startswith(("manage/people", "manage/audit"))), template


def test_admin_grants_every_role_any_role_grants_reading_and_no_role_grants_nothing():
    assert grants({Role.ADMIN}) == frozenset(Role)
    assert grants({Role.CATALOG}) == {Role.CATALOG, Role.REPORTS}
    assert grants({Role.REPORTS}) == {Role.REPORTS}
    assert grants(set()) == frozenset()


def test_a_refusal_names_the_route_the_role_it_needs_and_the_roles_held():
    reader = Principal("rahima", frozenset({Role.REPORTS}), VIA_CREDENTIAL)
    with pytest.raises(ContractError) as caught:
        check_role(reader, "DELETE", "manage/catalog/{sku}", Role.CATALOG)
    assert caught.value.code == ErrorCode.FORBIDDEN and caught.value.http_status == 403
    assert "needs the role catalog" in caught.value.message and "rahima holds reports" in caught.value.message
    check_role(reader, "GET", "manage/sales", Role.REPORTS)  # allowed: nothing raised
