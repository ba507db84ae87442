"""API keys for client systems: created with scopes, shown once, revoked by name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.cache import bump
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
