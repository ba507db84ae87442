"""The price catalogue: what booking systems read, and how finance changes P."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.adapters.models import PriceVersion
from billing.adapters.promotion_models import Promotion
from billing.domain.access import ANY_KEY
from billing.services.pricing import catalog, promotions
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, price_book
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import requires
from schemas.catalog import (
    CatalogSchema,
    PriceVersionRequestSchema,
    PriceVersionSchema,
    PromotionListSchema,
    PromotionRequestSchema,
    PromotionSchema,
)

blp = Blueprint("catalog", __name__, url_prefix="/v1/catalog", description="The price catalogue")


@blp.route("")
class CatalogView(MethodView):
    @requires(ANY_KEY)
    @blp.doc(security=BEARER)
    @blp.response(200, CatalogSchema())
    @problems(blp)
    def get(self) -> catalog.Catalog:
        """Session types, the price in force per currency, and announced changes."""
        return catalog.get_catalog(db.session())


@blp.route("/prices")
class PricesView(MethodView):
    @requires("catalog:write")
    @blp.doc(security=BEARER)
    @blp.arguments(PriceVersionRequestSchema())
    @blp.response(201, PriceVersionSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, price: dict[str, Any]) -> PriceVersion:
        """Create a new price version; existing quotes keep theirs."""
        created = catalog.create_price_version(db.session(), **price)
        price_book().forget()
        return created


@blp.route("/promotions")
class PromotionsView(MethodView):
    @requires("catalog:write")
    @blp.doc(security=BEARER)
    @blp.arguments(PromotionRequestSchema())
    @blp.response(201, PromotionSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any]) -> Promotion:
        """Create a promotion code quotes can name as `promotion_code`."""
        return promotions.create_promotion(db.session(), body)

    @requires("catalog:write", "quotes:write")
    @blp.doc(security=BEARER)
    @blp.response(200, PromotionListSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """Every promotion code, oldest first."""
        return {"data": promotions.list_promotions(db.session()), "has_more": False}
