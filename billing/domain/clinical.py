"""Who pays a patient's bills, as insurers and the rules on fees see it."""

from __future__ import annotations

import re
import warnings
from functools import cache
from typing import Any

SELF_PAY, MEDICARE, MEDICAID, COMMERCIAL = "self_pay", "medicare", "medicaid", "commercial"
PAYER_CLASSES = (SELF_PAY, MEDICARE, MEDICAID, COMMERCIAL)
# What the booking says of a fee not charged: nothing of the patient's coverage (which
# payer class it was is in the audit trail, for clinical and finance staff).
FEE_EXEMPT = "The patient's coverage exempts them from this fee (FEE_EXEMPT_PAYER_CLASSES)."


def fee_exemption(payer_class: str, exempt: tuple[str, ...]) -> str | None:
    """Why a patient of `payer_class` is charged no fee, when the clinic exempts it
    (Medicaid patients, by default: 42 CFR 447.15)."""
    return FEE_EXEMPT if payer_class in exempt else None


def npi_problem(npi: str) -> str | None:
    """Why `npi` is not a National Provider Identifier (ten digits whose last is the Luhn
    check digit of the others prefixed with 80840, as CMS issues them); None if it is."""
    if len(npi) != 10 or not npi.isascii() or not npi.isdigit():
        return "An NPI is ten digits."
    digits = [int(d) for d in "80840" + npi[:9]]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:  # from the right, every other digit doubled
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    if (10 - total % 10) % 10 != int(npi[9]):
        return "This NPI's check digit is wrong: check it for a typo."
    return None


ICD10_FORMAT = r"^[A-Z][0-9][0-9AB](\.[0-9A-Z]{1,4})?$"


@cache
def icd10cm() -> Any:
    """CMS's ICD-10-CM code list (the simple-icd-10-cm package, loaded once: it reads its
    data with an importlib call that warns of its deprecation, which is not ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm

        simple_icd_10_cm.is_valid_item("F32.2")  # its data is read on first use
    return simple_icd_10_cm


def normal_diagnosis(code: str) -> str:
    """`f322 ` as `F32.2`: upper case, no spaces, the dot after the category."""
    code = code.strip().upper()
    if len(code) > 3 and "." not in code:
        code = f"{code[:3]}.{code[3:]}"
    return code


def diagnosis_problem(code: str) -> str | None:
    """Why `code` is not an ICD-10-CM code a claim may carry (a billable one: a category
    with codes below it is not); None if it is. The code list is CMS's, shipped as data
    (simple-icd-10-cm)."""
    icd = icd10cm()
    if not re.match(ICD10_FORMAT, code):
        return f"{code!r} is not written as an ICD-10-CM code (such as F32.2 or F43.10)."
    if not icd.is_valid_item(code):
        return f"{code} is not in ICD-10-CM."
    if not icd.is_leaf(code):
        below = icd.get_children(code)
        example = f" (such as {below[0]})" if below else ""
        return f"{code} is a category: give a billable code under it{example}."
    return None


MAX_DIAGNOSES = 12  # CMS-1500 box 21 has A to L
POINTERS = "ABCDEFGHIJKL"
