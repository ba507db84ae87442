"""Pure: money, the pricing rules, statuses, dates, pay-link tokens, typed errors.

No Flask, no database, no Stripe: plain values in, plain values out."""
