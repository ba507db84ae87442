"""Cells of the CSV files the service writes, safe in the spreadsheets that open them."""

from __future__ import annotations

import re

# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Minor units and major ones (`-5000`, `-50.00`): numbers finance's sheets must read as such.
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def neutralise(cell: str) -> str:
    """A ' before text a spreadsheet would run as a formula (CSV injection); numbers as they are."""
    if cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
