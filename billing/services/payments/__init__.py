"""Payments: card on file, the pay page's intent, refunds, overpayments, recovery, and
Stripe's events."""
