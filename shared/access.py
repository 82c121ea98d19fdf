"""Head office's access, as both sides see it: roles, named credentials and the audit trail.

A credential is `bsh1.<name>.<secret>`: the name lets the cloud find the one record to
check, the secret is 32 random bytes (base64url). The bootstrap admin key (the app
setting) acts as a credential named `admin-key` holding the `admin` role.
"""

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from .models import Model, UtcTime


class Role(StrEnum):
    REPORTS = "reports"  # read only: reports, exports, listings
    CATALOG = "catalog"  # import, delete, compact products
    BRANCHES = "branches"  # create, rotate, revoke branches
    DEADLETTERS = "deadletters"  # replay, discard dead letters
    ADMIN = "admin"  # everything, including people and the audit


CREDENTIAL_PREFIX = "bsh1."
BOOTSTRAP_NAME = "admin-key"
PERSON_NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,39}")
# How a caller was recognised: the deployment's admin key, a named credential, or Entra ID.
VIA_ADMIN_KEY, VIA_CREDENTIAL, VIA_ENTRA = "admin key", "credential", "entra id"


def _person_name(value: str) -> str:
    if not PERSON_NAME_RE.fullmatch(value):
        raise ValueError("a person's name is 2-40 lower-case letters, digits or '-', starting with a letter (e.g. rahima-accounts)")
    if value == BOOTSTRAP_NAME:
        raise ValueError(f"{BOOTSTRAP_NAME} names the deployment's admin key; choose another name")
    return value


def _roles(value: list[Role]) -> list[Role]:
    if len(set(value)) != len(value):
        raise ValueError("a role is given twice")
    return sorted(value, key=list(Role).index)


PersonName = Annotated[str, AfterValidator(_person_name)]
Roles = Annotated[list[Role], Field(min_length=1, max_length=len(Role)), AfterValidator(_roles)]


def credential_parts(presented: str) -> tuple[str, str] | None:
    """(name, secret) of a named credential; None for anything else (the admin key)."""
    if not presented.startswith(CREDENTIAL_PREFIX):
        return None
    name, dot, secret = presented[len(CREDENTIAL_PREFIX):].partition(".")
    return (name, secret) if dot and PERSON_NAME_RE.fullmatch(name) and secret else None


class PersonCreate(Model):
    name: PersonName
    roles: Roles


class PersonInfo(Model):
    name: str
    roles: list[Role]
    created_at: UtcTime
    created_by: str
    revoked_at: UtcTime | None = None
    revoked_by: str | None = None


class PersonCreated(Model):
    person: PersonInfo
    credential: str  # shown once; the cloud keeps only its hash


class PeopleList(Model):
    people: list[PersonInfo]


class PersonRevocation(Model):
    name: str
    revoked_at: UtcTime
    already_revoked: bool = False


class Whoami(Model):
    name: str
    roles: list[Role]
    via: str


class AuditEntry(Model):
    at: UtcTime
    who: str
    via: str
    role: str  # the role the route needs
    method: str
    route: str  # the route template, e.g. manage/branches/{name}/revoke
    what: str  # its parameters and a summary of its body; never a secret
    status: int
    result: str  # "ok" or the error code


class AuditPage(Model):
    entries: list[AuditEntry]
    next: str | None = None  # pass back as `after`

