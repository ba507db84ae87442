"""Who pays a patient's bills, as insurers and the rules on fees see it."""

from __future__ import annotations

SELF_PAY, MEDICARE, MEDICAID, COMMERCIAL = "self_pay", "medicare", "medicaid", "commercial"
PAYER_CLASSES = (SELF_PAY, MEDICARE, MEDICAID, COMMERCIAL)
# Why a payer class pays no missed-appointment or late-cancellation fee, by default.
FEE_EXEMPTIONS = {
    MEDICAID: "Medicaid patients are not charged for missed appointments (42 CFR 447.15)",
}


def fee_exemption(payer_class: str, exempt: tuple[str, ...]) -> str | None:
    """Why a patient of `payer_class` is charged no fee, when the clinic exempts it."""
    if payer_class not in exempt:
        return None
    return FEE_EXEMPTIONS.get(payer_class, f"The clinic charges no fees to {payer_class} patients")
