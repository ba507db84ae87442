"""A local Stripe stand-in (localstripe) on loopback, for tests and the offline default."""

from billing.adapters.standin.server import StripeStandIn, free_port

__all__ = ["StripeStandIn", "free_port"]
