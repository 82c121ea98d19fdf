"""Which role each head-office route needs: one table, and the checks over it (no I/O).

Every `manage/...` route registered in function_app.py is in ROUTE_ROLES (a test walks the
registered functions); a request to a route that is not is refused, so a route added
without a role is closed rather than open. Reads need `reports`; every other role
includes reading, and `admin` includes everything.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from shared.access import Role
from shared.errors import ContractError, ErrorCode

# (method, route template as registered) -> the role it needs.
ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("GET", "manage/whoami"): Role.REPORTS,
    ("GET", "manage/branches"): Role.REPORTS,
    ("POST", "manage/branches"): Role.BRANCHES,
    ("POST", "manage/branches/{name}/rotate"): Role.BRANCHES,
    ("POST", "manage/branches/{name}/revoke"): Role.BRANCHES,
    ("POST", "manage/catalog"): Role.CATALOG,
    ("POST", "manage/catalog/compact"): Role.CATALOG,
    ("DELETE", "manage/catalog/{sku}"): Role.CATALOG,
    ("GET", "manage/sales"): Role.REPORTS,
    ("GET", "manage/reports/price-differences"): Role.REPORTS,
    ("GET", "manage/reports/sales"): Role.REPORTS,
    ("GET", "manage/reports/shifts"): Role.REPORTS,
    ("GET", "manage/reports/exceptions"): Role.REPORTS,
    # Rewrites every branch's day summaries from its sales: not for a read-only credential.
    ("POST", "manage/reports/rebuild"): Role.ADMIN,
    # Writes the lake's files (the same bytes again at worst): an operator's action, not a read.
    ("POST", "manage/lake/write"): Role.ADMIN,
    ("GET", "manage/deadletters"): Role.REPORTS,
    ("GET", "manage/deadletters/{id}"): Role.REPORTS,
    ("POST", "manage/deadletters/{id}/replay"): Role.DEADLETTERS,
    ("DELETE", "manage/deadletters/{id}"): Role.DEADLETTERS,
    ("GET", "manage/people"): Role.ADMIN,
    ("POST", "manage/people"): Role.ADMIN,
    ("POST", "manage/people/{name}/revoke"): Role.ADMIN,
    ("GET", "manage/audit"): Role.ADMIN,
}

ROUTE_PREFIX = "api/"  # host.json's routePrefix


@dataclass(frozen=True)
class Principal:
    """Who sent a head-office request: a name, the roles it holds, and how it was recognised."""

    name: str
    roles: frozenset[Role]
    via: str

    def may(self, role: Role) -> bool:
        return role in grants(self.roles)


def grants(roles: Iterable[Role]) -> frozenset[Role]:
    """What holding `roles` allows: admin allows all, any role allows reading."""
    held = frozenset(roles)
    if Role.ADMIN in held:
        return frozenset(Role)
    return held | {Role.REPORTS} if held else held


def match_route(method: str, path: str) -> tuple[str, Role] | None:
    """The route template a request's path falls under (`/api/manage/catalog/X` -> `manage/catalog/{sku}`)
    and its role; None when no route in the table matches. A literal segment wins over a parameter."""
    parts = path.strip("/").split("/")
    prefix = ROUTE_PREFIX.strip("/").split("/")
    if parts[: len(prefix)] != prefix:
        return None
    parts = parts[len(prefix):]
    best: tuple[int, str, Role] | None = None
    for (m, template), role in ROUTE_ROLES.items():
        if m != method.upper():
            continue
        segments = template.split("/")
        if len(segments) != len(parts):
            continue
        literal = 0
        for seg, part in zip(segments, parts):
            if seg.startswith("{"):
                if not part:
                    break
            elif seg != part:
                break
            else:
                literal += 1
        else:
            if best is None or literal > best[0]:
                best = (literal, template, role)
    return None if best is None else (best[1], best[2])


def required_role(method: str, path: str) -> tuple[str, Role]:
    found = match_route(method, path)
    if found is None:
        raise ContractError(ErrorCode.FORBIDDEN, f"{method} {path} is not a head-office route with a declared role; "
                            "it is refused to everyone (check the URL, or upgrade branchsync-admin)")
    return found


def check_role(principal: Principal, method: str, template: str, role: Role) -> None:
    if not principal.may(role):
        held = ", ".join(sorted(principal.roles)) or "none"
        raise ContractError(ErrorCode.FORBIDDEN, f"{method} {template} needs the role {role}; {principal.name} holds "
                            f"{held}. Ask an administrator: branchsync-admin people add NAME --role {role}")
