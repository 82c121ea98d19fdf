"""Head office's named credentials: create (the secret shown once), list, revoke, and recognise one.

The cloud keeps a credential's salted HMAC-SHA256, never its secret. The secret is 32
random bytes, so a slow password hash would buy nothing (nobody can search 2**256
guesses however fast the hash) and would cost CPU on every admin request; SECURITY.md says
more. A revoked credential is refused at once: every request reads its record (one point
read), nothing is cached.
"""

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime

from shared.access import (CREDENTIAL_PREFIX, PERSON_NAME_RE, VIA_CREDENTIAL, PeopleList, PersonCreate, PersonCreated,
                           PersonInfo, PersonRevocation, Role, credential_parts)
from shared.errors import ContractError, ErrorCode, shown

from .roles import Principal
from .store import Conflict, PersonRecord, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

SECRET_BYTES = 32
SALT_BYTES = 16
REFUSED = "the cloud refused this head-office credential"


def secret_hash(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def info(record: PersonRecord) -> PersonInfo:
    return PersonInfo(name=record.name, roles=[Role(r) for r in record.roles], created_at=record.created_at,
                      created_by=record.created_by, revoked_at=record.revoked_at, revoked_by=record.revoked_by)


class People:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def create(self, request: PersonCreate, by: Principal) -> PersonCreated:
        secret = secrets.token_urlsafe(SECRET_BYTES)
        salt = secrets.token_bytes(SALT_BYTES)
        record = PersonRecord(name=request.name, roles=tuple(str(r) for r in request.roles), salt=salt.hex(),
                              secret_hash=secret_hash(salt, secret), created_at=self.clock(), created_by=by.name)
        try:
            self.store.create_person(record)
        except Conflict:
            raise ContractError(ErrorCode.CONFLICT, f"{request.name} already has a credential (a revoked one keeps "
                                "its name in the audit); choose another name") from None
        log.info("head-office credential created name=%s roles=%s by=%s", record.name, ",".join(record.roles), by.name,
                 extra=dims(event="person_created"))
        return PersonCreated(person=info(record), credential=f"{CREDENTIAL_PREFIX}{record.name}.{secret}")

    def list_all(self) -> PeopleList:
        return PeopleList(people=[info(r) for r in self.store.list_people()])

    def revoke(self, name: str, by: Principal) -> PersonRevocation:
        record = self.store.get_person(name) if PERSON_NAME_RE.fullmatch(name) else None
        if record is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"nobody named {shown(name)} has a credential; "
                                "'branchsync-admin people list' shows who has")
        if record.revoked_at is not None:
            return PersonRevocation(name=name, revoked_at=record.revoked_at, already_revoked=True)
        record.revoked_at, record.revoked_by = self.clock(), by.name
        try:
            self.store.replace_person(record)  # ETag-checked: a concurrent revoke wins once
        except Conflict:
            raise ContractError(ErrorCode.CONFLICT, f"{name}'s credential changed meanwhile; revoke again") from None
        log.info("head-office credential revoked name=%s by=%s", name, by.name, extra=dims(event="person_revoked"))
        return PersonRevocation(name=name, revoked_at=record.revoked_at)

    def recognise(self, presented: str) -> Principal:
        """The principal a named credential stands for; 401 for an unknown, wrong or revoked one."""
        parts = credential_parts(presented)
        record = self.store.get_person(parts[0]) if parts else None
        if record is None or not hmac.compare_digest(secret_hash(bytes.fromhex(record.salt), parts[1]),
                                                     record.secret_hash):
            raise ContractError(ErrorCode.UNAUTHENTICATED, f"{REFUSED}: it is not one an administrator issued "
                                "(or was mistyped); ask for a new one")
        if record.revoked_at is not None:
            raise ContractError(ErrorCode.UNAUTHENTICATED, f"{REFUSED}: {record.name}'s credential was revoked on "
                                f"{record.revoked_at:%Y-%m-%d %H:%M} UTC by {record.revoked_by}; ask an administrator "
                                "for a new one")
        return Principal(record.name, frozenset(Role(r) for r in record.roles), VIA_CREDENTIAL)
