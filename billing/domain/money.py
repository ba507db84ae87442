"""Money: an integer amount of a currency's minor unit. The only place that rounds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Currencies the clinic may bill in, with the number of decimals of their minor
# unit as Stripe counts them. Zero-decimal currencies are not multiplied by 100.
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "aud brl cad chf cny czk dkk eur gbp hkd ils inr mxn nok nzd pln sek sgd usd zar".split(),
        2,
    ),
    **dict.fromkeys("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(), 0),
}

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "krw": "₩", "inr": "₹"}

# The smallest charge Stripe accepts per currency (its documented minimums, in minor
# units); other currencies: 1. Every price, the group's half included, must reach it.
STRIPE_MINIMUM_CHARGE: dict[str, int] = {
    **dict.fromkeys("usd aud brl cad chf eur inr jpy nzd sgd".split(), 50),
    "gbp": 30,
    "dkk": 250,
    "hkd": 400,
    "mxn": 1000,
    "nok": 300,
    "pln": 200,
    "sek": 300,
    "czk": 1500,
}

# The largest amount the service accepts for a price or a charge, in minor units.
# Well above any session price, well below anything that could overflow.
MAX_AMOUNT = 10_000_000


_TYPED = re.compile(r"(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]*))?")


class CurrencyMismatch(ValueError):
    """Arithmetic between two currencies."""


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency's minor unit (cents for usd, yen for jpy)."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money amount must be an int of minor units, got {self.amount!r}")
        if self.currency not in CURRENCY_EXPONENTS:
            raise ValueError(f"unsupported currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, times: int) -> Money:
        if isinstance(times, bool) or not isinstance(times, int):
            raise TypeError("Money can only be multiplied by an int")
        return Money(self.amount * times, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def halve(self) -> Money:
        """Half of this amount, rounding half up to the minor unit (50001 -> 25001)."""
        if self.amount < 0:
            raise ValueError("cannot halve a negative amount")
        return Money((self.amount + 1) // 2, self.currency)

    def percent(self, percent: int) -> Money:
        """`percent` per cent of this amount (0-100), rounding half up to the minor unit."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be 0 to 100")
        if self.amount < 0:
            raise ValueError("cannot take a percentage of a negative amount")
        return Money((self.amount * percent + 50) // 100, self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split by integer weights: floor each share, then hand out the leftover units.

        The parts always add up to the whole; leftovers go to the parts with the
        largest remainders, earlier parts first on ties.
        """
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if self.amount < 0:
            raise ValueError("cannot allocate a negative amount")
        total = sum(weights)
        shares = [self.amount * w // total for w in weights]
        remainders = [self.amount * w % total for w in weights]
        leftover = self.amount - sum(shares)
        by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for i in by_remainder[:leftover]:
            shares[i] += 1
        return [Money(share, self.currency) for share in shares]

    @staticmethod
    def sum(parts: Sequence[Money], currency: str) -> Money:
        """The sum of parts, all in `currency`."""
        total = Money.zero(currency)
        for part in parts:
            total = total + part
        return total

    def major_units(self) -> str:
        """For files other systems import: `1250.00`, `-5.10`, `5000` (jpy); no symbol, no
        thousands separator."""
        exponent = CURRENCY_EXPONENTS[self.currency]
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{major}" + (f".{minor:0{exponent}d}" if exponent else "")

    @classmethod
    def parse(cls, text: str, currency: str) -> Money | None:
        """What a person typed in major units (`150`, `150.5`, `$1,250.00`) as Money; None
        when it is not a positive amount of `currency` (more decimals than it has, letters,
        a sign)."""
        exponent = CURRENCY_EXPONENTS[currency]
        cleaned = text.strip().removeprefix(_SYMBOLS.get(currency, "\0")).replace(",", "")
        found = _TYPED.fullmatch(cleaned.strip())
        if found is None or len(found["minor"] or "") > exponent or len(found["major"]) > 12:
            return None
        minor = (found["minor"] or "").ljust(exponent, "0")
        amount = int(found["major"]) * 10**exponent + int(minor or 0)
        return cls(amount, currency) if amount > 0 else None

    def format(self) -> str:
        """For people: `$250.00`, `¥5000`, `1,250.00 CHF`."""
        exponent = CURRENCY_EXPONENTS[self.currency]
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**exponent)
        number = f"{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")
        symbol = _SYMBOLS.get(self.currency)
        if symbol:
            return f"{sign}{symbol}{number}"
        return f"{sign}{number} {self.currency.upper()}"
