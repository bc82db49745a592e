"""A pydantic model's fields read from environment variables, with the model's own defaults.

Every field is read from its variable (the field's name in capitals, unless ``Env("NAME")`` names
another), so a default is stated once: on the field. The variables are strings set by
CloudFormation parameters, whose "not set" is an empty string or a 0:

- unset or blank: the field keeps its default (a field without one: ``RuntimeError`` "NAME is not set");
- a number at or below 0 where the field's bound does not admit it (``ge=1``, ``gt=0``): not set
  either (the default, or None); a negative number where 0 is admitted is the model's to refuse;
- ``bool``: true/1/yes/on or false/0/no/off; a number that does not parse: one line naming the variable;
- ``tuple[str, ...]``: comma-separated, blanks and repeats dropped;
- strings are stripped, unless the field says ``Env(verbatim=True)`` (a chat template).

Pure, no I/O beyond the mapping it is given; no dependency beyond pydantic (no pydantic-settings
in the Lambda layer).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class Env:
    """How a field is read from the environment, when not as its name in capitals, stripped."""

    name: str | None = None
    verbatim: bool = False


def env_name(name: str, field: FieldInfo) -> str:
    marker = _marker(field)
    return (marker.name if marker and marker.name else None) or name.upper()


def env_values(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    """The model's fields the environment sets, parsed; fields it leaves unset are left out."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        variable = env_name(name, field)
        marker = _marker(field)
        raw = env.get(variable, "")
        text = raw if marker and marker.verbatim else raw.strip()
        if not text.strip():
            if field.is_required():
                raise RuntimeError(f"{variable} is not set")
            continue
        value = _parse(variable, text, _base_type(field.annotation))
        if isinstance(value, int | float) and not isinstance(value, bool) and _unset(value, field):
            continue
        values[name] = value
    return values


def _marker(field: FieldInfo) -> Env | None:
    return next((m for m in field.metadata if isinstance(m, Env)), None)


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> int; ``Literal[...]`` -> str; ``tuple[str, ...]`` -> tuple."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(inner)
    if origin is typing.Literal:
        return str
    return origin or annotation


def _parse(variable: str, text: str, kind: Any) -> Any:
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{variable} must be true or false, got {text!r}")
    if kind is int:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            raise ValueError(f"{variable} must be an integer, got {text!r}")
        return int(number)
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{variable} must be a number, got {text!r}") from None
    if kind is tuple:
        return tuple(dict.fromkeys(item for item in (p.strip() for p in text.split(",")) if item))
    return text


def _unset(value: float, field: FieldInfo) -> bool:
    """CloudFormation's "not set": a number at or below 0 the field's lower bound does not admit."""
    if value > 0:
        return False
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge) and float(bound.ge) > 0:  # type: ignore[arg-type]
            return True
        if isinstance(bound, annotated_types.Gt) and float(bound.gt) >= 0:  # type: ignore[arg-type]
            return True
    return False
