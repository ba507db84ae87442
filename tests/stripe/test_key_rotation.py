"""Rotating SECRET_KEY: links already sent keep working while the old key is listed in
SECRET_KEY_FALLBACKS, and stop once it is dropped; new links use the new key."""

from __future__ import annotations

from tests.stripe.test_pay_page import path_of, pay_link


def test_a_link_signed_before_a_rotation_opens_while_its_key_is_a_fallback(
    stripe_app, stripe_client, staff, open_invoice
) -> None:
    old_key = stripe_app.config["SECRET_KEY"]
    sent = path_of(pay_link(stripe_client, staff, open_invoice(card=None))["pay_url"])
    assert stripe_client.get(sent).status_code == 200

    stripe_app.config.update(SECRET_KEY="a brand new secret key", SECRET_KEY_FALLBACKS=[old_key])
    page = stripe_client.get(sent)
    assert page.status_code == 200
    assert "Pay" in page.get_data(as_text=True)
    fresh = path_of(pay_link(stripe_client, staff, open_invoice(card=None), key="l-2")["pay_url"])
    assert fresh != sent and stripe_client.get(fresh).status_code == 200

    stripe_app.config["SECRET_KEY_FALLBACKS"] = []  # the old key retired for good
    assert stripe_client.get(sent).status_code == 404
    assert stripe_client.get(fresh).status_code == 200
