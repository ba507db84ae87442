"""Use cases. Each takes the session first, owns its transaction and raises typed errors."""
