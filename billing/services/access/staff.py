"""Finance staff accounts: an email and a password hash (scrypt, via Werkzeug)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from billing.adapters.models import StaffUser
from billing.domain.errors import Conflict, NotFound, Unprocessable
from billing.services.access import audit

MIN_PASSWORD = 12
# Compared against when the email is unknown, so both failures take as long.
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


def create_staff_user(session: Session, email: str, password: str) -> StaffUser:
    email = email.strip().lower()
    if "@" not in email:
        raise Unprocessable("invalid_email", "Give the staff member's email address.")
    if len(password) < MIN_PASSWORD:
        raise Unprocessable("weak_password", f"Passwords have at least {MIN_PASSWORD} characters.")
    if session.scalars(select(StaffUser).where(StaffUser.email == email)).first():
        raise Conflict("staff_exists", f"There is already an account for {email}.")
    user = StaffUser(email=email, password_hash=generate_password_hash(password))
    session.add(user)
    audit.record(session, "staff.created", "staff_user", email)
    session.commit()
    return user


def change_password(session: Session, email: str, password: str) -> StaffUser:
    """A new password; every session of the account ends."""
    user = session.scalars(
        select(StaffUser).where(StaffUser.email == email.strip().lower())
    ).first()
    if user is None:
        raise NotFound("staff_not_found", f"There is no account for {email}.")
    if len(password) < MIN_PASSWORD:
        raise Unprocessable("weak_password", f"Passwords have at least {MIN_PASSWORD} characters.")
    user.password_hash = generate_password_hash(password)
    user.session_version += 1
    audit.record(session, "staff.password_changed", "staff_user", user.email)
    session.commit()
    return user


def end_sessions(session: Session, user: StaffUser) -> None:
    """Sign the account out everywhere."""
    user.session_version += 1
    audit.record(session, "staff.signed_out", "staff_user", user.email)
    session.commit()


def authenticate_staff(session: Session, email: str, password: str) -> StaffUser | None:
    """The account if the password is right and the account active; else None. Either
    way the attempt is in the audit trail."""
    email = email.strip().lower()
    user = session.scalars(select(StaffUser).where(StaffUser.email == email)).first()
    if user is None or user.disabled_at is not None:
        check_password_hash(_DUMMY_HASH, password)
        user = None
    elif not check_password_hash(user.password_hash, password):
        user = None
    with audit.acting(audit.current_actor() if user is None else _as_staff(user)):
        action = "staff.signed_in" if user else "staff.sign_in_failed"
        audit.record(session, action, "staff_user", email[:64] or "(blank)")
    session.commit()
    return user


def _as_staff(user: StaffUser) -> audit.Actor:
    return audit.Actor("staff", user.email, audit.current_actor().request_id)
