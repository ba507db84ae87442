"""A lean `Schema.load` for bodies that load without error.

Marshmallow's own load is most of what validating a booking costs: for every field it
builds a getter, stores results and errors through its error store, and loads every
nested object through a full `load` of its schema (a quarter of a quote's CPU). The
fields themselves are cheap. `lean_load` walks the same fields in the same order, calling
each field's own `deserialize` (its type, its validators), loading nested objects and
lists of them the same way, and runs the schema's own `@validates` and
`@validates_schema` methods through marshmallow. The moment anything does not go
through (a missing or unknown field, a wrong type, a failed validator, any exception)
it gives up and answers DECLINED: the caller then loads with marshmallow itself, whose
errors are the only errors anyone sees. So it never accepts what marshmallow refuses,
and what it accepts it loads to the same data (tests/unit/test_lean_load.py holds the
two equal on generated bodies).

A schema it cannot walk this way (pre_load or post_load hooks, `many`, `partial`,
another `unknown` than RAISE, dotted attributes) is always declined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from marshmallow import RAISE, Schema, ValidationError, fields, missing
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.error_store import ErrorStore

DECLINED: Final = object()  # load it with marshmallow instead


@dataclass(frozen=True, slots=True)
class _Step:
    data_key: str
    attribute: str
    field: fields.Field[Any]
    nested: _Plan | None  # a Nested field's schema, or a List of Nested's
    in_list: bool
    # For a field whose load is marshmallow's own Field.deserialize (its checks, its
    # _deserialize, its validators), that walk made here: the field's _deserialize
    # and validators, called directly. None: call field.deserialize.
    direct: _Direct | None = None


@dataclass(frozen=True, slots=True)
class _Direct:
    required: bool
    allow_none: bool
    convert: Any  # the field's bound _deserialize
    validators: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    schema: Schema
    steps: tuple[_Step, ...]
    known: frozenset[str]
    field_hooks: bool
    schema_hooks: bool


def lean_load(schema: Schema, data: Any) -> Any:
    """`schema.load(data)` when that succeeds, else DECLINED (never an error)."""
    plan = plan_for(schema)
    if plan is None:
        return DECLINED
    try:
        return _load(plan, data)
    except Exception:  # whatever it is, marshmallow's own load will say it
        return DECLINED


_PLANS: dict[int, tuple[Schema, _Plan | None]] = {}
_MAX_PLANS = 512


def plan_for(schema: Schema) -> _Plan | None:
    """The walk of `schema`'s fields (made once per schema object), or None."""
    known = _PLANS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    plan = _plan(schema)
    if len(_PLANS) < _MAX_PLANS:  # schemas live as long as their views
        _PLANS[id(schema)] = (schema, plan)
    return plan


def _plan(schema: Schema) -> _Plan | None:
    hooks = schema._hooks
    if schema.many or schema.partial or schema.unknown != RAISE:
        return None
    if hooks[PRE_LOAD] or hooks[POST_LOAD]:
        return None
    steps = []
    for attr_name, field in schema.load_fields.items():
        attribute = field.attribute or attr_name
        if "." in attribute:
            return None
        data_key = field.data_key if field.data_key is not None else attr_name
        nested: _Plan | None = None
        in_list = False
        if isinstance(field, fields.List) and type(field.inner) is fields.Nested:
            inner = field.inner
            if inner.many or inner.unknown is not None or inner.pre_load or inner.post_load:
                return None
            nested, in_list = _plan(inner.schema), True
        elif type(field) is fields.Nested:
            if field.many or field.unknown is not None:
                return None
            nested = _plan(field.schema)
        if (in_list or nested is not None) and (field.pre_load or field.post_load):
            return None
        if (type(field) is fields.Nested or in_list) and nested is None:
            return None
        direct = _direct(field) if nested is None else None
        steps.append(_Step(data_key, attribute, field, nested, in_list, direct))
    return _Plan(
        schema=schema,
        steps=tuple(steps),
        known=frozenset(step.data_key for step in steps),
        field_hooks=bool(hooks[VALIDATES]),
        schema_hooks=bool(hooks[VALIDATES_SCHEMA]),
    )


def _direct(field: fields.Field[Any]) -> _Direct | None:
    """The walk of `field.deserialize` when it is marshmallow's own, unchanged: missing
    and null values as it checks them, then `_deserialize`, then every validator (which
    `And` runs; any error declines). A field that changes any of these steps, or has
    field-level pre_load or post_load functions, is loaded by its own deserialize."""
    kind = type(field)
    base = fields.Field
    if (
        kind.deserialize is not base.deserialize
        or kind._validate is not base._validate
        or kind._validate_missing is not base._validate_missing
        or getattr(kind, "_validate_all", None) is not getattr(base, "_validate_all", None)
        or field.pre_load
        or field.post_load
        or field.load_default is not missing
    ):
        return None
    return _Direct(
        required=bool(field.required),
        allow_none=bool(field.allow_none),
        convert=field._deserialize,
        validators=tuple(field.validators),
    )


class _Declined(Exception):
    pass


def _load(plan: _Plan, data: Any) -> dict[str, Any]:
    if type(data) is not dict or not data.keys() <= plan.known:
        raise _Declined
    result: dict[str, Any] = {}
    for step in plan.steps:
        raw = data.get(step.data_key, missing)
        direct = step.direct
        if direct is not None:
            if raw is missing:
                if direct.required:
                    raise _Declined
                continue  # no load_default (_direct): nothing to set
            if raw is None:
                if not direct.allow_none:
                    raise _Declined
                value = None
            else:
                value = direct.convert(raw, step.data_key, data)
                for validator in direct.validators:
                    validator(value)
        elif step.nested is None:
            value = step.field.deserialize(raw, step.data_key, data)
        else:
            value = _nested(step, raw)
        if value is not missing:
            result[step.attribute] = value
    if plan.field_hooks or plan.schema_hooks:
        _validate(plan.schema, result, data)
    return result


def _nested(step: _Step, raw: Any) -> Any:
    """What Field.deserialize does for a Nested field or a List of them, loading the
    nested objects leanly."""
    field, nested = step.field, step.nested
    assert nested is not None
    field._validate_missing(raw)
    if raw is missing:
        default = field.load_default
        return default() if callable(default) else default
    if field.allow_none and raw is None:
        return None
    if step.in_list:
        if type(raw) is not list:
            raise _Declined
        inner = field.inner  # type: ignore[attr-defined]  # a List field's
        value: Any = [_inner(inner, nested, item) for item in raw]
    else:
        value = _load(nested, raw)
    field._validate(value)
    return value


def _inner(inner: fields.Field[Any], nested: _Plan, item: Any) -> Any:
    inner._validate_missing(item)
    if inner.allow_none and item is None:
        return None
    value = _load(nested, item)
    inner._validate(value)
    return value


def _validate(schema: Schema, result: dict[str, Any], data: dict[str, Any]) -> None:
    """The schema's @validates and @validates_schema methods, as Schema._do_load runs
    them on loaded data."""
    store = ErrorStore()  # type: ignore[no-untyped-call]  # untyped upstream
    schema._invoke_field_validators(error_store=store, data=result, many=False)
    for pass_collection in (True, False):
        schema._invoke_schema_validators(
            error_store=store,
            pass_collection=pass_collection,
            data=result,
            original_data=data,
            many=False,
            partial=schema.partial,
            unknown=schema.unknown,
            field_errors=False,
        )
    if store.errors:
        raise ValidationError(store.errors)
