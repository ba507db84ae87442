"""Memberships: the catalogue, patients' memberships, and their periods' money."""
