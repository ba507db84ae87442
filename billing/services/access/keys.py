"""API keys for client systems: created with scopes, shown once, revoked by name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.cache import bump
from billing.adapters.db import dialect_insert
from billing.adapters.models import ApiKey, utcnow
from billing.domain.access import SCOPES, generate_key, hash_key
from billing.domain.errors import Conflict, NotFound, Unprocessable
from billing.services.access import audit


def create_key(
    session: Session, name: str, scopes: list[str], client: str | None = None
) -> tuple[ApiKey, str]:
    """A new key called `name` for the client system `client` (by default its own name);
    returns the row and the plain key, which is never stored."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        raise Unprocessable(
            "unknown_scope",
            f"Unknown scopes {unknown}; choose from {', '.join(sorted(SCOPES))}.",
            {"scopes": [f"unknown: {', '.join(unknown)}" if unknown else "at least one scope"]},
        )
    if session.scalars(select(ApiKey).where(ApiKey.name == name)).first() is not None:
        raise Conflict("api_key_name_taken", f"A key named {name!r} already exists.")
    plain = generate_key()
    key = ApiKey(
        name=name,
        client=client or name,
        key_prefix=plain[:10],
        key_hash=hash_key(plain),
        scopes=",".join(sorted(scopes)),
    )
    session.add(key)
    audit.record(session, "api_key.created", "api_key", name, scopes=key.scopes, client=key.client)
    session.commit()
    return key, plain


def revoke_key(session: Session, name: str) -> ApiKey:
    """Revoke the key called `name`; it stops working at once."""
    key = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if key is None:
        raise NotFound("api_key_not_found", f"No key named {name!r}.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(session, "api_key.revoked", "api_key", name)
        bump(session)  # every instance forgets the key within CACHE_CHECK_SECONDS
        session.commit()
    return key


SCHEDULER_KEY = "billing-scheduler"


def system_key_id(session: Session) -> int:
    """In the caller's transaction: the id of the service's own key, which owns what the
    scheduler does on nobody's request (AutoPay's charges and their idempotency keys). It
    has no scopes and is revoked from the start: nobody can call the API with it."""
    insert = dialect_insert(session)
    plain = generate_key()  # thrown away: the hash matches nothing anyone holds
    session.execute(
        insert(ApiKey)
        .values(
            name=SCHEDULER_KEY,
            client=SCHEDULER_KEY,
            key_prefix="",
            key_hash=hash_key(plain),
            scopes="",
            created_at=utcnow(),
            revoked_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return int(session.scalars(select(ApiKey.id).where(ApiKey.name == SCHEDULER_KEY)).one())
