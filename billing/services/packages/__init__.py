"""Packages of credits: the catalogue, sales to patients, and what their credits pay."""
