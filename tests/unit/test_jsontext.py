"""The hot paths' JSON writer writes what Flask's own provider answers."""

from __future__ import annotations

import json

from flask import Flask
from hypothesis import example, given
from hypothesis import strategies as st

from billing.adapters import jsontext

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    # Floats as a quote has them (credits used: halves); orjson writes an exponent
    # without its sign and padding (1e-5, not 1e-05): none are written with one.
    | st.integers(min_value=0, max_value=2000).map(lambda halves: halves / 2)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


FLASK = Flask(__name__)


@given(values)
@example({"note": "rub\x7fout"})  # DEL alone: ASCII, yet json escapes it
@example({"patient": "Jos\u00e9 Mu\u00f1oz", "note": "\x7f\u2028\U0001f600", "\u00e9": ["\u00fc"]})
def test_flask_compact_is_what_flask_writes(value: object) -> None:
    answered = FLASK.json.response(value).get_data(as_text=True)
    assert jsontext.flask_compact(value) + "\n" == answered


@given(values)
def test_for_database_reads_back_as_the_value(value: object) -> None:
    assert json.loads(jsontext.for_database(value)) == value
