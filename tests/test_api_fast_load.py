"""``FastLoader`` gives exactly what ``Schema.load`` gives: the same values, the same errors.

Bodies are drawn from each schema's own field names, unknown names and JSON values of every
kind (valid ones included: strings of the right lengths, ids as numbers, grams in and out
of range, enum spellings), and both loaders must agree on every one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from raft3d.api.schemas import (
    FastLoader,
    FilamentSchema,
    PrinterSchema,
    PrintJobSchema,
    StatusChangeSchema,
)

SCHEMAS = [PrinterSchema, FilamentSchema, PrintJobSchema, StatusChangeSchema]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**8), max_value=10**8),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.text(min_size=250, max_size=260),
    st.sampled_from(["", "x", "Queued", "queued", "PLA", "pla", "canceled", "\ud800", "Running"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)


def bodies(schema: Schema) -> st.SearchStrategy[Any]:
    names = [*schema.load_fields, "unknown", "ID"]
    return st.one_of(
        st.dictionaries(st.sampled_from(names), json_values, max_size=len(names)),
        json_values,  # not even an object
    )


def outcome(load: Any, body: Any) -> tuple[str, Any]:
    try:
        return "loaded", load(body)
    except ValidationError as exc:
        return "refused", exc.messages


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda c: c.__name__)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fast_loader_agrees_with_schema_load(schema_class: type[Schema], data: Any) -> None:
    schema = schema_class()
    fast = FastLoader(schema_class())
    body = data.draw(bodies(schema))
    expected = outcome(schema.load, body)
    got = outcome(fast.load, body)
    assert got == expected
    if expected[0] == "loaded":
        assert list(got[1]) == list(expected[1])  # same keys in the same order


def test_valid_bodies_take_the_fast_path() -> None:
    fast = FastLoader(PrinterSchema())
    calls = []
    fast.schema.load = lambda *a, **k: calls.append(a)  # type: ignore[method-assign]
    assert fast.load({"id": 7, "company": "Acme", "model": "M1"}) == {
        "id": "7",
        "company": "Acme",
        "model": "M1",
    }
    assert calls == []


def test_schemas_with_hooks_always_take_the_full_path() -> None:
    fast = FastLoader(FilamentSchema())  # @validates_schema: remaining <= total
    with pytest.raises(ValidationError) as caught:
        fast.load(
            {
                "type": "PLA",
                "color": "red",
                "total_weight_in_grams": 10,
                "remaining_weight_in_grams": 11,
            }
        )
    assert "remaining_weight_in_grams" in caught.value.messages
