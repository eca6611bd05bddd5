"""cattrs structuring of a yaml.v2 tree (:mod:`replica.config.yamlv2`) into the schema's classes.

The hooks follow yaml.v2's decoding into Go structs: a null gives the field's zero
value (or its default, see :data:`~replica.config.schema.NULL_ZERO`), integers must fit
the Go type, a float is truncated into an integer, a duration is an integer of
nanoseconds or a Go duration string, and a key the schema does not know is an error
(unlike Litestream, which ignores it) unless it starts with ``x-``. Like yaml.v2, a hook
never raises for a type error: it records the error in the node's
:class:`~replica.config.yamlv2.DecodeLog` and returns the zero value, and the caller
raises them all at once with :meth:`~replica.config.yamlv2.DecodeLog.raise_if_any`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from replica._go.duration import ns_to_timedelta, parse_go_duration
from replica._go.strconv import INT64_MAX, INT64_MIN
from replica.config.bytesize import parse_byte_size
from replica.config.errors import ConfigError
from replica.config.schema import GO_TYPE, INLINE, NULL_ZERO, SKIP, go_name, yaml_key
from replica.config.yamlv2 import DecodeIssue, DecodeLog, InlineMap, Map, Scalar, Seq, type_error

T = TypeVar("T")

_INLINE_KEY: Final = "\x00inline"


def structure(value: Any, cls: type[T]) -> T:
    """Decode a tree value into ``cls``; type errors go to the nodes' log, unknown keys raise."""
    result: T = _converter.structure(value, cls)
    return result


def _as_scalar(value: Any, go_type: str) -> Scalar | None:
    if isinstance(value, Scalar):
        return value
    type_error(value, go_type)
    return None


def _structure_str(value: Any, _: Any) -> str:
    if value is None:
        return ""
    s = _as_scalar(value, "string")
    return s.text if s is not None else ""


def _structure_bool(value: Any, _: Any) -> bool:
    if value is None:
        return False
    s = _as_scalar(value, "bool")
    if s is not None and type(s.value) is bool:
        return s.value
    if s is not None:
        type_error(s, "bool")
    return False


_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int": (INT64_MIN, INT64_MAX),
    "int64": (INT64_MIN, INT64_MAX),
    "uint32": (0, (1 << 32) - 1),
}


def _structure_int(value: Any, _: Any, go_type: str = "int") -> int:
    if value is None:
        return 0
    s = _as_scalar(value, go_type)
    if s is None:
        return 0
    lo, hi = _INT_RANGES[go_type]
    v = s.value
    if type(v) is int and lo <= v <= hi:
        return v
    if type(v) is float and math.isfinite(v) and lo <= math.trunc(v) <= hi:
        return math.trunc(v)
    type_error(s, go_type)
    return 0


def _structure_duration(value: Any, _: Any) -> dt.timedelta:
    if value is None:
        return dt.timedelta(0)
    s = _as_scalar(value, "time.Duration")
    if s is None:
        return dt.timedelta(0)
    v = s.value
    if type(v) is int and INT64_MIN <= v <= INT64_MAX:
        return ns_to_timedelta(v)
    if type(v) is float and math.isfinite(v) and INT64_MIN <= math.trunc(v) <= INT64_MAX:
        return ns_to_timedelta(math.trunc(v))
    if s.tag == "!!str":
        try:
            return ns_to_timedelta(parse_go_duration(s.text))
        except ValueError:
            pass
    type_error(s, "time.Duration")
    return dt.timedelta(0)


def _structure_byte_size(value: Any, _: Any) -> int | None:
    """``part-size``: decoded into a string first, then Litestream's ParseByteSize (fatal on error)."""
    if value is None:
        return None
    s = _as_scalar(value, "string")
    if s is None:
        return None
    try:
        return parse_byte_size(s.text)
    except ConfigError as e:
        s.log.add(DecodeIssue(s.line, str(e), fatal=True))
        return None


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _structure_tuple_factory(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    elem = get_args(t)[0]
    go_type = go_name(t)

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, Seq):
            type_error(value, go_type)
            return ()
        return tuple(_converter.structure(item, elem) for item in value)

    return structure


def _structure_class_factory(cls: type) -> Callable[[Any, Any], Any]:
    """Structure an attrs class from a ``Map`` with yaml.v2's null semantics and Go key names."""
    fields = attrs.fields(cls)
    overrides: dict[str, Any] = {}
    keys: list[tuple[attrs.Attribute[Any], str]] = []
    for f in fields:
        if f.metadata.get(SKIP):
            overrides[f.name] = override(omit=True)
            continue
        key = _INLINE_KEY if f.metadata.get(INLINE) else yaml_key(f)
        keys.append((f, key))
        go_type = f.metadata.get(GO_TYPE)
        if go_type == "bytesize":
            overrides[f.name] = override(rename=key, struct_hook=_structure_byte_size)
        elif go_type:
            overrides[f.name] = override(
                rename=key, struct_hook=functools.partial(_structure_int, go_type=go_type)
            )
        else:
            overrides[f.name] = override(rename=key)
    inner: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(cls, _converter, **overrides)
    go_type = go_name(cls)
    known = {key for _f, key in keys if key != _INLINE_KEY}
    for f, key in keys:
        if key == _INLINE_KEY and isinstance(f.type, type) and attrs.has(f.type):
            known.update(yaml_key(g) for g in attrs.fields(f.type) if not g.metadata.get(SKIP))

    def structure(value: Any, _: Any) -> Any:
        from_null = value is None
        if not from_null and not isinstance(value, Map):
            type_error(value, go_type)
            from_null = True
        mapping: Mapping[str, Any] = {} if from_null else value
        if isinstance(value, Map) and not isinstance(value, InlineMap):
            for k in value:
                if k not in known and not k.startswith("x-"):
                    line = value.key_lines.get(k, value.line)
                    raise ConfigError(f"unknown configuration key {k!r} on line {line}", key=k, line=line)
        data: dict[str, Any] = {}
        for f, key in keys:
            if key == _INLINE_KEY:
                # A null or mistyped parent has no keys to decode, hence nothing to report.
                log = value.log if isinstance(value, Map) else DecodeLog()
                data[key] = InlineMap(0, log, mapping)
            elif key in mapping:
                v = mapping[key]
                if v is not None or f.metadata.get(NULL_ZERO):
                    data[key] = v
            elif from_null and f.metadata.get(NULL_ZERO):
                data[key] = None
        return inner(data, cls)

    return structure


_converter = cattrs.Converter(detailed_validation=False)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(dt.timedelta, _structure_duration)
_converter.register_structure_hook_factory(_is_homogeneous_tuple, _structure_tuple_factory)
_converter.register_structure_hook_factory(attrs.has, _structure_class_factory)
