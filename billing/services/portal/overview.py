"""What a signed-in address sees: for each patient it reaches, what is owed (per
currency, less their credit), the open bills to pay, the paid ones with receipts, and
the memberships with their next dates. Every figure is worked out here and written for
people; the page only shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.credit_models import PatientPackage
from billing.adapters.estimate_models import Estimate
from billing.adapters.models import Invoice, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import memberships as membership_rules
from billing.domain import schedules as plan_rules
from billing.domain import statuses
from billing.domain.dates import clinic_date
from billing.domain.errors import NotFound
from billing.domain.money import Money
from billing.domain.pricing import session_name
from billing.services.integrations.email_content import link_for_email
from billing.services.packages.credits import balances
from billing.services.payments import autopay, credit_requests, patients
from billing.services.payments.account import account
from billing.services.portal.access import name_of, patients_of, reachable

RECEIPTED = statuses.SETTLED  # money was collected: a receipt exists
RECEIPTS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class BillShown:
    id: str
    number: str
    what: str
    date_of_service: str
    total: str
    paid: str | None
    due: str | None
    status: str
    payable: bool
    plan: str | None = None  # a payment plan's next instalment, in words


@dataclass(frozen=True, slots=True)
class MembershipShown:
    name: str
    fee: str
    status: str
    next_charge: str | None
    ends: str | None


@dataclass(frozen=True, slots=True)
class PackageShown:
    name: str
    credits_left: str  # "3½ of 6 IV credits left"
    expires: str | None


@dataclass(frozen=True, slots=True)
class EstimateShown:
    id: str
    what: str
    issued: str
    total: str


@dataclass(frozen=True, slots=True)
class PatientShown:
    patient_id: str
    name: str
    balances: list[dict[str, str]]
    open_bills: list[BillShown]
    receipts: list[BillShown]
    memberships: list[MembershipShown]
    packages: list[PackageShown]
    estimates: list[EstimateShown]


STATUS_WORDS = {
    statuses.OPEN: "Due",
    statuses.PARTIALLY_PAID: "Partly paid",
    statuses.PROCESSING: "Payment on its way",
    statuses.PAID: "Paid",
    statuses.PARTIALLY_REFUNDED: "Paid, part refunded",
    statuses.REFUNDED: "Refunded",
}
MEMBERSHIP_WORDS = {
    membership_rules.ACTIVE: "Active",
    membership_rules.PAST_DUE: "Payment overdue",
    membership_rules.PAUSED: "Paused",
}


def accounts(session: Session, email: str, zone: ZoneInfo) -> list[PatientShown]:
    return [_patient(session, patient_id, zone) for patient_id in patients_of(session, email)]


def _patient(session: Session, patient_id: str, zone: ZoneInfo) -> PatientShown:
    view = account(session, patient_id)
    receipts = session.scalars(
        select(Invoice)
        .where(Invoice.patient_id == patient_id, Invoice.status.in_(RECEIPTED))
        .order_by(Invoice.scheduled_at.desc(), Invoice.created_at.desc())
        .limit(RECEIPTS_SHOWN)
    ).all()
    asked = {r.currency: r for r in credit_requests.open_requests(session, patient_id)}
    payable: dict[str, int] = {}
    for invoice in view.open_invoices:
        if invoice.status in statuses.PAYABLE and invoice.balance_due > 0:
            payable[invoice.currency] = payable.get(invoice.currency, 0) + 1
    balances = []
    for row in view.balances:
        currency = str(row["currency"])
        owed, credit = int(str(row["owed"])), int(str(row["credit"]))
        request = asked.get(currency)
        balances.append(
            {
                "currency": currency,
                "owed": Money(owed, currency).format(),
                "credit": Money(credit, currency).format() if credit else "",
                "balance": Money(max(0, owed - credit), currency).format(),
                # Credit beyond what is owed may be asked back (once, until answered).
                "refundable": "yes" if credit > owed and request is None else "",
                "asked": clinic_date(request.created_at, zone=zone) if request else "",
                # Several bills to pay: one payment may pay them all, oldest first.
                "together": "yes" if payable.get(currency, 0) > 1 else "",
            }
        )
    return PatientShown(
        patient_id=patient_id,
        name=name_of(session, patient_id),
        balances=balances,
        open_bills=[shown_bill(invoice, zone) for invoice in view.open_invoices],
        receipts=[shown_bill(invoice, zone) for invoice in receipts],
        memberships=[
            MembershipShown(
                name=membership.plan.name,
                fee=Money(membership.plan.amount, membership.plan.currency).format()
                + (" a month" if membership.plan.interval == membership_rules.MONTH else " a year"),
                status=MEMBERSHIP_WORDS.get(membership.status, membership.status),
                next_charge=_day(membership_rules.next_charge_on(membership)),
                ends=_day(membership.ends_on),
            )
            for membership in view.memberships
        ],
        packages=_packages(session, patient_id, zone),
        estimates=[
            EstimateShown(
                id=estimate.id,
                what=_estimated(estimate, zone),
                issued=clinic_date(estimate.issued_at, zone=zone),
                total=Money(estimate.total, estimate.currency).format(),
            )
            for estimate in session.scalars(
                select(Estimate)
                .where(Estimate.patient_id == patient_id)
                .order_by(Estimate.issued_at.desc())
                .limit(RECEIPTS_SHOWN)
            )
        ],
    )


def _estimated(estimate: Estimate, zone: ZoneInfo) -> str:
    name = session_name(estimate.session_type)
    if estimate.sessions > 1:
        return f"{estimate.sessions} sessions of {name} over {estimate.course_months} months"
    return f"{name}, {clinic_date(estimate.scheduled_at, zone=zone)}"


def _packages(session: Session, patient_id: str, zone: ZoneInfo) -> list[PackageShown]:
    """Packages paid for and not used up, refunded or expired: the credits left."""
    owned = list(
        session.scalars(
            select(PatientPackage)
            .where(PatientPackage.patient_id == patient_id, PatientPackage.paid_at.is_not(None))
            .order_by(PatientPackage.sold_at)
        )
    )
    now = utcnow()
    counts = balances(session, owned, now)
    shown = []
    for package in owned:
        left = counts[package.id].available
        if left <= 0:
            continue
        shown.append(
            PackageShown(
                name=package.name,
                credits_left=f"{_halves(left)} of {_halves(package.half_credits)} IV credits left",
                expires=clinic_date(package.expires_at, zone=zone) if package.expires_at else None,
            )
        )
    return shown


def _halves(count: int) -> str:
    whole, half = divmod(count, 2)
    return f"{whole}½" if half and whole else ("½" if half else str(whole))


def _plan(invoice: Invoice) -> str | None:
    plan = invoice.plan
    if plan is None or plan.status not in plan_rules.LIVE:
        return None
    waiting = [i for i in plan.items if i.status in ("scheduled", "retrying")]
    if not waiting:
        return None
    item = min(waiting, key=lambda i: i.due_on)
    amount = Money(item.amount - item.amount_paid, plan.currency).format()
    overdue = " (overdue)" if plan.status == plan_rules.PAST_DUE else ""
    return f"Payment plan{overdue}: next {amount} on {clinic_date(item.due_on)}"


def _day(value: date | None) -> str | None:
    return clinic_date(value) if value is not None else None


def shown_bill(invoice: Invoice, zone: ZoneInfo) -> BillShown:
    currency = invoice.currency
    what = "Package" if invoice.session_type == "package" else session_name(invoice.session_type)
    if invoice.kind != "session" and invoice.session_type != "package":
        what = f"{what} ({invoice.kind.replace('_', ' ')})"
    return BillShown(
        id=invoice.id,
        number=invoice.number,
        what=what,
        date_of_service=clinic_date(invoice.scheduled_at, zone=zone),
        total=Money(invoice.total, currency).format(),
        paid=Money(invoice.amount_paid, currency).format() if invoice.amount_paid else None,
        due=Money(invoice.balance_due, currency).format() if invoice.balance_due else None,
        status=STATUS_WORDS.get(invoice.status, invoice.status),
        payable=invoice.status in statuses.PAYABLE and invoice.balance_due > 0,
        plan=_plan(invoice) if invoice.balance_due > 0 else None,
    )


def invoice_of(session: Session, email: str, invoice_id: str) -> Invoice:
    """One of the address's patients' invoices; 404 for any other (whether or not it
    exists)."""
    invoice = session.get(Invoice, invoice_id)
    reachable(session, email, invoice.patient_id if invoice else "")
    assert invoice is not None
    return invoice


def pay_token(session: Session, secret: str, invoice: Invoice, ttl: timedelta) -> str:
    """A pay link's token for an open invoice: its newest link with a day to run, or a
    new one (audited)."""
    if invoice.status not in statuses.PAYABLE:
        session.rollback()
        raise NotFound("not_found", "This bill cannot be paid here now.")
    token = link_for_email(session, secret, invoice, ttl)
    session.commit()
    return token


@dataclass(frozen=True, slots=True)
class CardShown:
    id: str
    name: str  # Visa ending 4242
    expires: str
    default: bool
    uses: list[str]
    moves: list[str]  # the plans and memberships it pays, which may move to another card


@dataclass(frozen=True, slots=True)
class WalletShown:
    patient_id: str
    name: str
    cards: list[CardShown]
    autopay: str | None  # what AutoPay does, in words; None when it is off


def wallet(session: Session, gateway: StripeGateway, email: str, patient_id: str) -> WalletShown:
    """A patient's saved cards, which is the default, what charges each on a schedule, and
    AutoPay: 404 unless `email` reaches the patient."""
    reachable(session, email, patient_id)
    default_id = patients.default_card_id(session, patient_id)
    saved = patients.consents(session, patient_id)
    cards = [
        CardShown(
            id=card.id,
            name=f"{card.brand.title()} ending {card.last4}",
            expires=f"{card.exp_month:02d}/{card.exp_year}",
            default=card.id == default_id,
            uses=patients.uses_of(session, patient_id, card.id),
            moves=patients.uses_of(session, patient_id, card.id, autopay=False),
        )
        for card in patients.list_cards(session, gateway, patient_id)
        if card.id in saved and saved[card.id].removed_at is None
    ]
    try:
        view = autopay.autopay_of(session, patient_id)
    except NotFound:  # never billed by card: nothing saved, nothing automatic
        view = None
    said = None
    if view is not None and view.enabled and view.card is not None:
        brand = str(view.card["brand"] or "card").title()
        said = f"AutoPay is on: open bills are charged to your {brand}"
        said += f" ending {view.card['last4']} after each visit."
    session.commit()
    return WalletShown(patient_id, name_of(session, patient_id), cards, said)


def estimate_of(session: Session, email: str, estimate_id: str) -> Estimate:
    """One of the address's patients' Good Faith Estimates; 404 for any other."""
    estimate = session.get(Estimate, estimate_id)
    reachable(session, email, estimate.patient_id if estimate else "")
    assert estimate is not None
    return estimate
