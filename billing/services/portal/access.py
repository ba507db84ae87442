"""Who may see what in the patient portal, and signing in without a password.

**Which patients an address reaches.** The portal signs in an email address, not a
patient id. An address reaches each patient id whose newest invoice that carries an
email (and is not void) carries this one (compared without case). So a patient sees
their own bills, a parent or guardian whose address the booking system gives for a
child's bookings sees the child's bills too (a family's payer), and when a patient's
bookings start giving another address, the old one stops reaching them at their next
invoice. Nothing else links an
address to a patient: a portal page asked about any other patient's invoice, card,
membership or statement answers 404.

**Signing in.** An address typed at /account gets a one-time link by email when it
reaches a patient (the same answer, after the same work, whether or not it does: the
worker that sends the email decides). The link works once, for
PORTAL_LINK_MINUTES, and only in the browser that asked for it (a cookie it was given,
hashed here). Opening it shows a button; pressing it signs in, so a mail scanner that
opens every link uses nothing. Staff can send the same kind of link from the API: it is
bound to no browser, since none asked. A session lasts PORTAL_IDLE_MINUTES without a
page and PORTAL_SESSION_HOURS in all; the database keeps only its cookie's hash.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from billing.adapters.models import Invoice, new_id, utcnow
from billing.adapters.outbox import EmailMessage
from billing.adapters.portal_models import PortalSession, PortalSignIn
from billing.domain import paylinks, statuses
from billing.domain.errors import Conflict, Forbidden, NotFound
from billing.services.access import audit
from billing.services.integrations import email_content, emails
from billing.services.invoicing.paylinks import LinkGone

SIGN_IN_EMAIL = "portal_sign_in"  # the email's kind
PURPOSE = "portal-sign-in:"  # signs links with a key of their own, never a pay link's


@dataclass(frozen=True, slots=True)
class Lifetimes:
    link: timedelta
    idle: timedelta
    whole: timedelta


@dataclass(frozen=True, slots=True)
class Opened:
    """A session just made: its cookie's value (never stored) and its row."""

    cookie: str
    session: PortalSession


def normalised(email: str) -> str:
    return email.strip().lower()[:254]


def patients_of(session: Session, email: str) -> list[str]:
    """The patient ids `email` reaches: each whose newest invoice with an email has this
    one (in the order they first appear). A void invoice decides nothing (a booking made
    with a mistyped address and cancelled gives that address no one); invoices made at
    the same moment are ordered by id, as `email_of` orders them."""
    address = normalised(email)
    if "@" not in address:
        return []
    later = aliased(Invoice)
    newer_elsewhere = exists().where(
        and_(
            later.patient_id == Invoice.patient_id,
            later.patient_email.is_not(None),
            later.status != statuses.VOID,
            func.lower(later.patient_email) != address,
            or_(
                later.created_at > Invoice.created_at,
                and_(later.created_at == Invoice.created_at, later.id > Invoice.id),
            ),
        )
    )
    found = session.execute(
        select(Invoice.patient_id, func.min(Invoice.created_at))
        .where(
            func.lower(Invoice.patient_email) == address,
            Invoice.status != statuses.VOID,
            ~newer_elsewhere,
        )
        .group_by(Invoice.patient_id)
        .order_by(func.min(Invoice.created_at), Invoice.patient_id)
    ).all()
    return [row[0] for row in found]


def email_of(session: Session, patient_id: str) -> str | None:
    """The address a patient is reached at: their newest (not void) invoice's."""
    return session.scalar(
        select(Invoice.patient_email)
        .where(
            Invoice.patient_id == patient_id,
            Invoice.patient_email.is_not(None),
            Invoice.status != statuses.VOID,
        )
        .order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .limit(1)
    )


def name_of(session: Session, patient_id: str) -> str:
    """The patient's name as their newest bill has it (their id when none does)."""
    name = session.scalar(
        select(Invoice.patient_name)
        .where(Invoice.patient_id == patient_id)
        .order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .limit(1)
    )
    return name or patient_id


def browser_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def new_browser_cookie() -> str:
    return secrets.token_urlsafe(32)


def ask_for_link(session: Session, email: str, browser: str | None, lifetimes: Lifetimes) -> None:
    """A sign-in link for `email`, bound to the browser holding the cookie `browser`
    (None: to none). Whether the address reaches anyone is decided when the email is
    sent, never here: asking for a known address and an unknown one does the same work
    and takes as long, so neither the answer nor its timing tells them apart."""
    now = utcnow()
    sign_in = PortalSignIn(
        id=new_id("psi"),
        email=normalised(email),
        browser_hash=browser_hash(browser) if browser else None,
        created_at=now,
        expires_at=now + lifetimes.link,
    )
    session.add(sign_in)
    session.flush()
    _queue_email(session, sign_in)
    audit.record(
        session,
        "portal.link_asked",
        "portal_sign_in",
        sign_in.id,
        bound_to_browser=browser is not None,
        expires_at=sign_in.expires_at.isoformat(),
    )
    session.commit()


@dataclass(frozen=True, slots=True)
class Invitation:
    sent_to: str  # the address, partly hidden: r***@example.org
    expires_at: datetime


def invite(session: Session, patient_id: str, lasts: timedelta) -> Invitation:
    """Staff send a patient a sign-in link, to the address on their newest invoice (never
    one typed by whoever asks): bound to no browser, since none asked for it."""
    address = email_of(session, patient_id)
    if address is None:
        known = session.scalar(select(Invoice.id).where(Invoice.patient_id == patient_id))
        session.rollback()
        if known is None:
            raise NotFound("patient_not_found", f"No bills were made for patient {patient_id}.")
        raise Conflict(
            "no_email", "The patient has no email address on their bills to send a link to."
        )
    now = utcnow()
    sign_in = PortalSignIn(
        id=new_id("psi"),
        email=normalised(address),
        browser_hash=None,
        created_at=now,
        expires_at=now + lasts,
    )
    session.add(sign_in)
    session.flush()
    _queue_email(session, sign_in)
    audit.record(
        session,
        "portal.link_sent",
        "portal_sign_in",
        sign_in.id,
        patient_id=patient_id,
        bound_to_browser=False,
        expires_at=sign_in.expires_at.isoformat(),
    )
    session.commit()
    return Invitation(hidden(sign_in.email), sign_in.expires_at)


def hidden(address: str) -> str:
    """`r***@example.org`: enough for staff to tell which address, not to copy it."""
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}"


def _queue_email(session: Session, sign_in: PortalSignIn) -> None:
    key = f"{SIGN_IN_EMAIL}:{sign_in.id}"
    emails.queue_to(session, SIGN_IN_EMAIL, key, sign_in.email, ref=sign_in.id)


def token_for(session: Session, secret: str, sign_in_id: str) -> str | None:
    """The link's token while it can still be used and its address reaches a patient
    (the email is written when sent; an address that reaches no one is sent nothing)."""
    sign_in = session.get(PortalSignIn, sign_in_id)
    if sign_in is None or sign_in.used_at is not None or sign_in.expires_at <= utcnow():
        return None
    if not patients_of(session, sign_in.email):
        return None
    return paylinks.sign(PURPOSE + secret, sign_in.id, sign_in.expires_at)


def check_link(
    session: Session, keys: Sequence[str], token: str, browser: str | None
) -> PortalSignIn:
    """The sign-in a link stands for, while it can still be used in this browser; a
    typed error otherwise (404 not ours, 410 expired or used, 403 another browser)."""
    try:
        claims = paylinks.verify([PURPOSE + k for k in keys if k], token, utcnow())
    except paylinks.ExpiredToken:
        raise LinkGone("sign_in_link_expired", "This sign-in link has expired.") from None
    except paylinks.InvalidToken:
        raise NotFound("sign_in_link_invalid", "This sign-in link is not valid.") from None
    sign_in = session.get(PortalSignIn, claims.link_id)
    if sign_in is None:
        raise NotFound("sign_in_link_invalid", "This sign-in link is not valid.")
    if sign_in.used_at is not None:
        raise LinkGone("sign_in_link_used", "This sign-in link was already used.")
    if sign_in.expires_at <= utcnow():
        raise LinkGone("sign_in_link_expired", "This sign-in link has expired.")
    if sign_in.browser_hash is not None and (
        browser is None or not secrets.compare_digest(sign_in.browser_hash, browser_hash(browser))
    ):
        raise Forbidden(
            "sign_in_other_browser",
            "This sign-in link works only in the browser where it was asked for.",
        )
    return sign_in


def use_link(session: Session, keys: Sequence[str], token: str, browser: str | None) -> Opened:
    """Sign in with a link: it is used up (one UPDATE that only an unused, unexpired link
    passes, so two presses at once make one session) and a session begins."""
    sign_in = check_link(session, keys, token, browser)
    now = utcnow()
    took = session.execute(
        update(PortalSignIn)
        .where(
            PortalSignIn.id == sign_in.id,
            PortalSignIn.used_at.is_(None),
            PortalSignIn.expires_at > now,
        )
        .values(used_at=now)
        .returning(PortalSignIn.id)
    ).scalar_one_or_none()
    if took is None:
        session.rollback()
        raise LinkGone("sign_in_link_used", "This sign-in link was already used.")
    cookie = secrets.token_urlsafe(32)
    opened = PortalSession(
        id=new_id("pss"),
        secret_hash=browser_hash(cookie),
        email=sign_in.email,
        sign_in_id=sign_in.id,
        created_at=now,
        seen_at=now,
    )
    session.add(opened)
    with audit.acting(audit.Actor("patient", sign_in.email, audit.current_actor().request_id)):
        audit.record(session, "portal.signed_in", "portal_session", opened.id)
    session.commit()
    return Opened(cookie, opened)


def current(
    session: Session, cookie: str | None, lifetimes: Lifetimes, now: datetime | None = None
) -> PortalSession | None:
    """The session behind a cookie while it lasts (seen now, so idling starts again)."""
    if not cookie or len(cookie) > 100:
        return None
    now = now or utcnow()
    found = session.scalars(
        select(PortalSession).where(PortalSession.secret_hash == browser_hash(cookie))
    ).first()
    if (
        found is None
        or found.ended_at is not None
        or now - found.seen_at > lifetimes.idle
        or now - found.created_at > lifetimes.whole
    ):
        session.commit()
        return None
    found.seen_at = now
    session.commit()
    return found


def end(session: Session, portal_session: PortalSession) -> None:
    portal_session.ended_at = utcnow()
    audit.record(session, "portal.signed_out", "portal_session", portal_session.id)
    session.commit()


def reachable(session: Session, email: str, patient_id: str) -> None:
    """404 unless `email` reaches `patient_id` (the same answer as for an id that does
    not exist)."""
    if patient_id not in patients_of(session, email):
        session.rollback()
        raise NotFound("not_found", "There is nothing here.")


def _sign_in_email(
    session: Session, sending: emails.Sending, message: EmailMessage
) -> email_content.Content | None:
    """The sign-in email, written as it is sent: none once the link is used or expired,
    or when its address reaches no patient."""
    sign_in = session.get(PortalSignIn, message.ref) if message.ref else None
    link = token_for(session, sending.links.secret, message.ref or "")
    if sign_in is None or link is None:
        return None
    return email_content.render_sign_in(sending.links, link, sign_in.expires_at - utcnow())


emails.WRITERS[SIGN_IN_EMAIL] = emails.Writer(
    _sign_in_email, kept=lambda sent: email_content.withheld(sent, "/account/sign-in/")
)
