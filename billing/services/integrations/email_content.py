"""What each email says, in plain text and HTML, from templates/email/.

Only the clinic, the invoice's number, the amount and a link: no session type, drug,
clinician or anything else about the patient's treatment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, PayLink, utcnow
from billing.domain import paylinks
from billing.domain.money import Money
from billing.services.access import audit

TEMPLATES = Environment(
    loader=PackageLoader("billing", "templates/email"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Links:
    """Where links in emails point, and what signs them; the clinic as patients know it."""

    base_url: str
    secret: str
    ttl: timedelta
    clinic_name: str
    clinic_phone: str
    clinic_email: str
    mail_domain: str


@dataclass(frozen=True, slots=True)
class Content:
    subject: str
    text: str
    html: str
    unsubscribe: str | None = None  # the one-click address, for List-Unsubscribe


# kind -> (subject, what the email says, the button, the page the link opens)
WORDING = {
    "pay_link": (
        "Invoice {number} from {clinic}",
        "Your invoice {number} for {amount} is ready. You can pay it securely online.",
        "Pay {amount}",
        "",
    ),
    "reminder": (
        "Reminder: invoice {number} from {clinic}",
        "Invoice {number} for {amount} is still open. You can pay it securely online.",
        "Pay {amount}",
        "",
    ),
    "action_needed": (
        "Your payment for invoice {number} needs you",
        "We could not charge your saved card for invoice {number} ({amount}): your bank "
        "needs you to confirm the payment, or the card was declined. Nothing has been "
        "charged. You can pay securely online.",
        "Pay {amount}",
        "",
    ),
    "bank_debit_failed": (
        "Your bank payment for invoice {number} did not go through",
        "Your bank did not pay invoice {number} from your account: nothing was taken. "
        "{amount} is still owed. You can pay securely online.",
        "Pay {amount}",
        "",
    ),
    "bank_debit_returned": (
        "Your bank returned a payment for invoice {number}",
        "Your bank sent back a payment you made from your account for invoice {number}, "
        "after it had gone through. {amount} is owed again. You can pay securely online.",
        "Pay {amount}",
        "",
    ),
    "plan_past_due": (
        "A payment on your plan for invoice {number} is overdue",
        "We could not collect a payment of your payment plan for invoice {number} from your "
        "saved card, after trying again over several days. {amount} is still owed. You can "
        "pay securely online, or contact us to change your plan.",
        "Pay {amount}",
        "",
    ),
    "receipt": (
        "Receipt for invoice {number} from {clinic}",
        "Thank you: we received your payment of {amount} for invoice {number}.",
        "View your receipt",
        "/receipt",
    ),
}


def link_for_email(session: Session, secret: str, invoice: Invoice, ttl: timedelta) -> str:
    """In the caller's transaction: a token for the invoice's newest link that still has a
    day to run, or for a new one (audited like any other)."""
    now = utcnow()
    link = session.scalars(
        select(PayLink)
        .where(
            PayLink.invoice_id == invoice.id,
            PayLink.revoked_at.is_(None),
            PayLink.expires_at > now + timedelta(days=1),
        )
        .order_by(PayLink.expires_at.desc())
    ).first()
    if link is None:
        link = PayLink(invoice_id=invoice.id, created_at=now, expires_at=now + ttl)
        session.add(link)
        session.flush()
        audit.record(
            session,
            "pay_link.created",
            "pay_link",
            link.id,
            invoice_id=invoice.id,
            expires_at=link.expires_at.isoformat(),
        )
    return paylinks.sign(secret, link.id, link.expires_at)


def token_of(session: Session, secret: str, link_id: str) -> str | None:
    """The token of one link, while it stands."""
    link = session.get(PayLink, link_id)
    if link is None or link.revoked_at is not None or link.expires_at <= utcnow():
        return None
    return paylinks.sign(secret, link.id, link.expires_at)


def render(session: Session, links: Links, kind: str, invoice: Invoice) -> Content:
    """The email of `kind` about `invoice`, with a link that works for `links.ttl`."""
    token = link_for_email(session, links.secret, invoice, links.ttl)
    subject, says, button, page = WORDING[kind]
    words = {
        "number": invoice.number,
        "clinic": links.clinic_name,
        # What is still owed: a patient who paid part is asked for the rest, not all again.
        "amount": Money(
            invoice.total if kind == "receipt" else invoice.balance_due, invoice.currency
        ).format(),
    }
    return _written(
        links,
        subject.format(**words),
        says.format(**words),
        button.format(**words),
        f"/pay/{token}{page}",
        number=invoice.number,
        amount=words["amount"],
    )


def _written(
    links: Links,
    subject: str,
    says: str,
    button: str,
    path: str,
    number: str | None = None,
    amount: str | None = None,
    unsubscribe: str | None = None,
) -> Content:
    """An email in the clinic's words, plain text and HTML: what it says, the button to
    `path` on the service, an invoice's number and amount when it is about one."""
    context = {
        "clinic": links.clinic_name,
        "phone": links.clinic_phone,
        "email": links.clinic_email,
        "says": says,
        "button": button,
        "url": f"{links.base_url.rstrip('/')}{path}",
        "number": number,
        "amount": amount,
        "unsubscribe": unsubscribe,
    }
    return Content(
        subject=subject,
        text=TEMPLATES.get_template("message.txt").render(context),
        html=TEMPLATES.get_template("message.html").render(context),
        unsubscribe=unsubscribe,
    )


def render_sign_in(links: Links, token: str, lasts: timedelta) -> Content:
    """The portal's sign-in link: which clinic, and for how long the link works; nothing
    about the patient, their visits or what they owe."""
    minutes = max(1, int(lasts.total_seconds() // 60))
    within = f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"
    return _written(
        links,
        f"Your sign-in link for {links.clinic_name}",
        f"Use the button below to sign in to your billing account at {links.clinic_name}. "
        f"The link works once, within {within}. If you did not ask for it, you can "
        "ignore this email: nobody can sign in without it.",
        "Sign in to your account",
        f"/account/sign-in/{token}",
    )


def render_statement(links: Links, month: str, due: list[str], unsubscribe: str) -> Content:
    """The monthly statement email: the month, what is due in all (never an amount of a
    single service), a link to the portal, and a link to stop these emails."""
    return _written(
        links,
        f"Your statement for {month} from {links.clinic_name}",
        f"Your statement for {month} from {links.clinic_name} is ready. Balance due: "
        f"{' and '.join(due)}. Sign in to your account to see the statement and pay.",
        "See your statement",
        "/account",
        unsubscribe=unsubscribe,
    )


def withheld(content: Content, path: str) -> Content:
    """The email as kept after sending: each link to `path` with its token left out."""
    token = re.compile(re.escape(path) + r"[^\s\"'<>]+")

    def without(text: str) -> str:
        return token.sub(path + "(link withheld)", text)

    return Content(content.subject, without(content.text), without(content.html), None)
