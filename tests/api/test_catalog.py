"""GET /v1/catalog and POST /v1/catalog/prices."""

from __future__ import annotations

from tests.conftest import in_days


def test_catalog_lists_session_types_and_derived_group_price(client, make_key) -> None:
    response = client.get("/v1/catalog", headers=make_key("invoices:read"))
    assert response.status_code == 200
    body = response.json
    assert {
        t["session_type"]: (t["patients_min"], t["patients_max"]) for t in body["session_types"]
    } == {
        "iv_individual": (1, 1),
        "im_group": (2, 5),
    }
    [usd] = body["prices"]
    assert usd["currency"] == "usd"
    assert usd["iv_individual_amount"] == 50000
    assert usd["im_group_amount"] == 25000
    assert usd["price_version"] == 1


def test_new_price_version_derives_group_price_rounded_half_up(client, make_key) -> None:
    headers = make_key("catalog:write")
    created = client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 50001, "currency": "usd"},
        headers=headers,
    )
    assert created.status_code == 201
    assert created.json["price_version"] == 2
    assert created.json["im_group_amount"] == 25001
    catalog = client.get("/v1/catalog", headers=headers).json
    assert catalog["prices"][0]["price_version"] == 2


def test_announced_price_is_listed_as_upcoming(client, make_key) -> None:
    headers = make_key("catalog:write")
    client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 55000, "currency": "usd", "effective_at": in_days(14)},
        headers=headers,
    )
    catalog = client.get("/v1/catalog", headers=headers).json
    assert catalog["prices"][0]["iv_individual_amount"] == 50000
    assert [p["iv_individual_amount"] for p in catalog["upcoming"]] == [55000]


def test_price_in_a_new_currency_adds_it_to_the_catalog(client, make_key) -> None:
    headers = make_key("catalog:write")
    client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 70000, "currency": "jpy"},
        headers=headers,
    )
    prices = client.get("/v1/catalog", headers=headers).json["prices"]
    assert {p["currency"]: p["im_group_amount"] for p in prices} == {"jpy": 35000, "usd": 25000}


def test_price_cannot_take_effect_in_the_past(client, make_key) -> None:
    response = client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 55000, "currency": "usd", "effective_at": in_days(-2)},
        headers=make_key("catalog:write"),
    )
    assert response.status_code == 422
    assert response.json["code"] == "effective_at_in_past"
    assert "effective_at" in response.json["errors"]


def test_absurd_or_negative_price_is_refused(client, make_key) -> None:
    headers = make_key("catalog:write")
    for amount in (-5, 0, 10**10, 499.99):
        response = client.post(
            "/v1/catalog/prices",
            json={"iv_individual_amount": amount, "currency": "usd"},
            headers=headers,
        )
        assert response.status_code == 422, amount
        assert "iv_individual_amount" in response.json["errors"]


def test_price_whose_group_half_stripe_could_not_charge_is_refused(client, make_key) -> None:
    headers = make_key("catalog:write")
    for currency, too_low, lowest in (("usd", 98, 99), ("gbp", 58, 59), ("jpy", 98, 99)):
        refused = client.post(
            "/v1/catalog/prices",
            json={"iv_individual_amount": too_low, "currency": currency},
            headers=headers,
        )
        assert refused.status_code == 422, (currency, refused.json)
        assert "minimum charge" in refused.json["errors"]["iv_individual_amount"][0]
        accepted = client.post(
            "/v1/catalog/prices",
            json={"iv_individual_amount": lowest, "currency": currency},
            headers=headers,
        )
        assert accepted.status_code == 201, (currency, accepted.json)
