"""The advice payload's API serializers, derived from its one typed description.

Each dataclass of predictions/payload.py becomes a read-only serializer whose component name in
the OpenAPI schema is the dataclass's name; field types, nullability, choices (``Literal``) and
help texts come from the dataclass, so the API cannot drift from what the worker stores.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from rest_framework import serializers

from medai_site.api_fields import StrictCharField
from predictions import payload

_SCALARS: dict[Any, type[serializers.Field]] = {
    str: StrictCharField,
    int: serializers.IntegerField,
    float: serializers.FloatField,
    bool: serializers.BooleanField,
    Any: serializers.JSONField,
}
# The timestamp is stored as ISO 8601 text; the schema says what it is.
_OVERRIDES: dict[tuple[type, str], type[serializers.Field]] = {
    (payload.AdvicePayload, "computed_at"): serializers.DateTimeField,
}
_cache: dict[type, type[serializers.Serializer]] = {}


def serializer_for(cls: type, *, name: str | None = None, extra: dict | None = None) -> type:
    """A ``Serializer`` class for dataclass ``cls`` (nested dataclasses become nested ones)."""
    if name is None and extra is None and cls in _cache:
        return _cache[cls]
    hints = typing.get_type_hints(cls)
    declared: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kwargs: dict[str, Any] = {}
        if f.metadata.get("help"):
            kwargs["help_text"] = f.metadata["help"]
        override = _OVERRIDES.get((cls, f.name))
        declared[f.name] = override(**kwargs) if override else _field(hints[f.name], kwargs)
    declared.update(extra or {})
    ref_name = name or cls.__name__
    declared["Meta"] = type("Meta", (), {"ref_name": ref_name})
    declared["__doc__"] = cls.__doc__
    serializer = type(f"{ref_name}Serializer", (serializers.Serializer,), declared)
    if name is None and extra is None:
        _cache[cls] = serializer
    return serializer


def _field(hint: Any, kwargs: dict[str, Any]) -> serializers.Field:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return _field(inner, {**kwargs, "allow_null": True})
    if origin is list:
        (item,) = typing.get_args(hint)
        if dataclasses.is_dataclass(item):
            return serializer_for(item)(many=True, **kwargs)
        return serializers.ListField(child=_field(item, {}), **kwargs)
    if origin is typing.Literal:
        return serializers.ChoiceField(choices=list(typing.get_args(hint)), **kwargs)
    if dataclasses.is_dataclass(hint):
        return serializer_for(hint)(**kwargs)
    if hint is Any:
        kwargs.setdefault("allow_null", True)
    return _SCALARS[hint](**kwargs)


# The stored advice as the API shows it: the payload, with the row's id and storage time.
AdviceSerializer = serializer_for(
    payload.AdvicePayload,
    name="Advice",
    extra={"id": serializers.IntegerField(), "created_at": serializers.DateTimeField()},
)
AdviceSerializer.__doc__ = "The stored advice, the same content the visit page shows."
