"""The SDK's types are the contract: no `# type: ignore` on a Stripe call, and every other
one in the service says why on its line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORE = re.compile(r"#\s*type:\s*ignore(?:\[[^\]]*\])?(?P<after>.*)$")


def test_the_stripe_gateway_has_no_type_ignore() -> None:
    gateway = (ROOT / "billing" / "adapters" / "stripe_gateway.py").read_text()
    assert "type: ignore" not in gateway


def test_every_type_ignore_in_the_service_says_why_on_its_line() -> None:
    unexplained = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("billing", "schemas")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (found := IGNORE.search(line)) and not re.match(r"\s*#\s*\w", found["after"])
    ]
    assert unexplained == []
