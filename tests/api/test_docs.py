"""The OpenAPI document and an offline docs page."""

from __future__ import annotations

import re


def test_openapi_document_describes_the_api(client) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.0")
    assert {"/v1/catalog", "/v1/catalog/prices", "/v1/quotes", "/v1/quotes/{quote_id}"} <= set(
        spec["paths"]
    )
    post = spec["paths"]["/v1/quotes"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "QuoteRequest" in spec["components"]["schemas"]


def test_docs_page_loads_every_asset_from_the_service(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the docs page references its assets"
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the service"
        response = client.get(asset)
        response.close()
        assert response.status_code == 200, asset
