"""The finance pages' test data and sign-in, shared by the browser tests."""

from __future__ import annotations

EMAIL, PASSWORD = "finance@example-clinic.org", "correct horse battery staple"


def sign_in(page, base: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/finance/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
