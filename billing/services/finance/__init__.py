"""Finance: reconciliation, the other reports, Stripe sync."""
