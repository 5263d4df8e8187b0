"""Parameter types: checking and converting YAML values against declared types.

Node params are typed by the annotations of their ``Config`` dataclass; graph params by a
short type name (``path``, ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``any``).
Below both the node API (:mod:`avflow.node`, which describes configs) and the graph layer
(:mod:`avflow.graph`, which checks them): it imports neither.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

GRAPH_PARAM_TYPES: dict[str, Any] = {
    "path": Path, "str": str, "int": int, "float": float, "bool": bool,
    "list": list, "dict": dict, "any": Any,
}


class ParamTypeError(TypeError):
    """A value does not fit a declared type; the message says what would."""


def type_name(tp: Any) -> str:
    """Short human name of a type annotation (``int``, ``path``, ``one of 'a', 'b'``, ...)."""
    if tp is Any:
        return "any"
    if tp is Path:
        return "path"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = " or ".join(type_name(a) for a in args)
        return inner + (" or null" if len(args) < len(typing.get_args(tp)) else "")
    if origin in (list, tuple, dict):
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        if origin is list and args:
            return f"list of {type_name(args[0])}"
        return origin.__name__ if origin is not tuple else "list"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` or raise :class:`ParamTypeError`.

    Only lossless conversions happen: int to float, str to path, list to tuple.
    """
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except ParamTypeError:
                continue
        raise ParamTypeError(f"expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ParamTypeError(f"expected {type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamTypeError(f"expected {type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ParamTypeError(f"expected a list of {len(args)} values, got {value!r}")
            return tuple(coerce(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        items = [coerce(v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ParamTypeError(f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is list:
        if not isinstance(value, (list, tuple)):
            raise ParamTypeError(f"expected a list, got {value!r}")
        return list(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamTypeError(f"expected bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ParamTypeError(f"expected int, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ParamTypeError(f"expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ParamTypeError(f"expected str, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise ParamTypeError(f"expected a path, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ParamTypeError(f"expected {type_name(tp)}, got {value!r}")


def types_compatible(graph_type: Any, field_type: Any) -> bool:
    """Whether a graph parameter of ``graph_type`` may feed a field of ``field_type``."""
    if graph_type is Any or field_type is Any:
        return True
    samples = {Path: Path("x"), str: "x", int: 1, float: 1.5, bool: True, list: [], dict: {}}
    sample = samples.get(graph_type)
    if sample is None:
        return True
    try:
        coerce(sample, field_type)
        return True
    except ParamTypeError:
        # A str graph param may still name a Literal choice; checked with the real value later.
        return graph_type is str and "one of" in type_name(field_type)


def config_fields(config_cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Fields of a node Config dataclass with their resolved type annotations."""
    if not dataclasses.is_dataclass(config_cls):
        return {}
    hints = typing.get_type_hints(config_cls, include_extras=False)
    return {f.name: (f, hints.get(f.name, Any)) for f in dataclasses.fields(config_cls) if f.init}


def field_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def check_choices(value: Any, choices: Any) -> str | None:
    """The problem with ``value`` against ``choices`` (None: no choices), or None. A list value
    checks each item: its choices are what the list may hold."""
    if choices is None:
        return None
    if isinstance(value, (list, tuple)):
        bad = [v for v in value if v not in choices]
        if bad:
            return (f"unknown {', '.join(repr(v) for v in bad)} in {list(value)!r}; "
                    f"each item must be one of {', '.join(repr(c) for c in choices)}")
        return None
    if value not in choices:
        return f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}"
    return None


def check_bounds(value: Any, f: dataclasses.Field) -> str | None:
    """The problem with ``value`` against a field's declared choices/bounds, or None."""
    meta = f.metadata or {}
    problem = check_choices(value, meta.get("choices"))
    if problem:
        return problem
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            return f"must be >= {lo}, got {value!r}"
        if hi is not None and value > hi:
            return f"must be <= {hi}, got {value!r}"
    return None


def describe_config(config_cls: type) -> dict[str, dict[str, Any]]:
    """Params of a Config as plain data: type, default, required, doc, choices."""
    out: dict[str, dict[str, Any]] = {}
    for name, (f, tp) in config_fields(config_cls).items():
        default = None if field_required(f) else field_default(f)
        if isinstance(default, Path):
            default = str(default)
        meta = f.metadata or {}
        out[name] = {
            "type": type_name(tp),
            "required": field_required(f),
            "default": default,
            "doc": meta.get("doc", ""),
        }
        for key in ("choices", "min", "max"):
            if meta.get(key) is not None:
                out[name][key] = list(meta[key]) if key == "choices" else meta[key]
    return out
