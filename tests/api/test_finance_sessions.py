"""Finance sign-in: the session cookie's attributes, sessions that really end, idle
timeout, and sign-in attempts limited per address and per account."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from billing.adapters import db
from billing.services.access.staff import change_password, create_staff_user

HTTPS = {"base_url": "https://localhost"}
EMAIL, PASSWORD = "clerk@example.org", "a long enough password"


@pytest.fixture
def clerk(app: Flask) -> str:
    with app.app_context():
        create_staff_user(db.session(), EMAIL, PASSWORD)
    return EMAIL


def sign_in(
    client: FlaskClient, password: str = PASSWORD, address: str = "10.0.0.1", email: str = EMAIL
) -> int:
    login = client.get("/finance/login", **HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    answer = client.post(
        "/finance/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        environ_base={"REMOTE_ADDR": address},
        **HTTPS,
    )
    return answer.status_code


def dashboard(client: FlaskClient) -> int:
    return client.get("/finance", **HTTPS).status_code


def test_the_session_cookie_is_lax_http_only_secure_and_lives_twelve_hours(
    app: Flask, clerk: str
) -> None:
    client = app.test_client()
    login = client.get("/finance/login", **HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    answer = client.post(
        "/finance/login",
        data={"email": clerk, "password": PASSWORD, "csrf_token": token.group(1)},
        **HTTPS,
    )
    cookie = answer.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))  # type: ignore[union-attr]
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)


def test_signing_out_ends_every_session_of_the_account_copies_included(
    app: Flask, clerk: str
) -> None:
    first, second = app.test_client(), app.test_client()
    assert sign_in(first) == 303 and sign_in(second) == 303
    copy = app.test_client()
    kept = first.get_cookie("session", path="/finance")
    assert kept is not None
    copy.set_cookie("session", kept.value, domain="localhost", path="/finance")
    assert (dashboard(first), dashboard(second), dashboard(copy)) == (200, 200, 200)

    page = first.get("/finance", **HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    assert (
        first.post("/finance/logout", data={"csrf_token": token.group(1)}, **HTTPS).status_code
        == 303
    )

    assert (dashboard(first), dashboard(second), dashboard(copy)) == (303, 303, 303)
    assert sign_in(first) == 303 and dashboard(first) == 200  # signing in again works


def test_the_session_cookie_is_for_the_finance_pages_only(app: Flask, clerk: str) -> None:
    sent: dict[str, str | None] = {}
    app.before_request(lambda: sent.__setitem__(request.path, request.cookies.get("session")))
    client = app.test_client()
    assert sign_in(client) == 303
    cookie = client.get_cookie("session", path="/finance")
    assert cookie is not None and cookie.path == "/finance"
    assert dashboard(client) == 200 and sent["/finance"] is not None
    # A patient's pay page (or the API) is neither sent the staff cookie nor refreshes it.
    for path in ("/pay/pl_nothing", "/healthz", "/favicon.ico"):
        answer = client.get(path, **HTTPS)
        assert "Set-Cookie" not in answer.headers, path
        assert sent[path] is None, path


def test_a_new_password_ends_every_session(app: Flask, clerk: str) -> None:
    client = app.test_client()
    assert sign_in(client) == 303 and dashboard(client) == 200
    with app.app_context():
        change_password(db.session(), clerk, "another long password")
    assert dashboard(client) == 303
    assert sign_in(client) == 401
    assert sign_in(client, "another long password") == 303


def test_an_idle_session_ends(app: Flask, clerk: str) -> None:
    client = app.test_client()
    assert sign_in(client) == 303 and dashboard(client) == 200
    with client.session_transaction("/finance", **HTTPS) as session:
        session["seen"] = session["seen"] - app.config["FINANCE_IDLE_MINUTES"] * 60 - 1
    assert dashboard(client) == 303


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(app: Flask, clerk: str) -> None:
    client = app.test_client()
    assert sign_in(client) == 303 and dashboard(client) == 200
    with client.session_transaction("/finance", **HTTPS) as session:
        session["since"] = session["since"] - 12 * 3600 - 1  # busy all along: "seen" is now
    assert dashboard(client) == 303


def test_wrong_passwords_lock_the_account_from_that_address_only_and_say_so(
    app: Flask, clerk: str
) -> None:
    """A stranger's wrong passwords lock the account for the stranger's address, never
    for its owner at the clinic; the page says what happened and for how long."""
    app.config["LOGIN_ACCOUNT_LIMIT"] = "3 per hour"
    client = app.test_client()
    for _ in range(5):  # sign-ins that succeed are not counted against the account
        assert sign_in(client, address="10.0.1.1") == 303
    for _ in range(3):
        assert sign_in(client, "wrong password!", address="203.0.113.9") == 401
    login = client.get("/finance/login", **HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    locked = client.post(
        "/finance/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
        **HTTPS,
    )
    assert locked.status_code == 429
    page = locked.get_data(as_text=True)
    assert "Too many wrong passwords for this account" in page and "minutes" in page
    assert 60 < int(locked.headers["Retry-After"]) <= 3600  # the hour's sliding window
    # The owner, from the clinic's address, signs in as ever.
    assert sign_in(client, address="10.0.1.1") == 303


def test_sign_ins_are_limited_per_address(app: Flask, clerk: str) -> None:
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    client = app.test_client()
    statuses = [sign_in(client, "wrong password!", address="10.0.4.1") for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert sign_in(client, address="10.0.4.2") == 303
