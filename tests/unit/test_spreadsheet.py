"""CSV injection: text a spreadsheet would run as a formula gets a ' before it; numbers,
ordinary text and empty cells stay as they are."""

from __future__ import annotations

import pytest

from billing.domain.spreadsheet import neutralise


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","x")',
        "+cmd|' /C calc'!A0",
        "-1+2",
        "@SUM(1+1)",
        "\tTAB",
        "\rCR",
        "=",
        "-",
        "-5000 off",  # a number only at the start
        "-5000\n",  # a line after it
        "-5.",
        "-.5",
        "--5",
        "+5",  # a sign a number never has in the service's files
    ],
)
def test_text_a_spreadsheet_would_run_gets_a_quote_before_it(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5000", "-50.00", "-0.5", "5000", "12.50", "0", "-0"])
def test_plain_numbers_negative_or_decimal_stay_as_they_are(cell: str) -> None:
    assert neutralise(cell) == cell


@pytest.mark.parametrize(
    "cell",
    [
        'shorter session, "as agreed"',
        "2026-10-01T12:00:00+00:00",
        "in_0123456789abcdef",
        "re_3Pq",
        "01/03/2025",
        "a = b",  # not at the start
        " =1+1",  # a space first: the spreadsheet reads text
        "'=1+1",  # already neutralised: not twice
    ],
)
def test_ordinary_text_stays_as_it_is(cell: str) -> None:
    assert neutralise(cell) == cell


def test_an_empty_cell_stays_empty() -> None:
    assert neutralise("") == ""
