"""What the service talks to: the database, Stripe (and its local stand-in), caches, metrics."""
