"""Pricing: the catalogue and quotes."""
