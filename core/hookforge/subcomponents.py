"""Sub-component fields: a part inside a component, chosen by name like a component.

A plugin family declares a kind (``encoder``) with an entry point in ``hookforge.kinds`` naming
its group (``encoder = "hookforge.encoders"``); its parts register there like any component. A
component's Config then declares a field of that kind::

    from hookforge import Sub, sub_field

    class Config(ComponentConfig):
        encoder: Sub("encoder") = sub_field("mlp", "the encoder network")

and a config sets it as ``{name: conv, channels: [16, 32]}`` (or just ``conv``). The field's value
is a :class:`SubSpec`: the part's class and its validated ``Config``; ``spec.create()`` builds it.
Listing, "did you mean", broken and disabled parts, ``hookforge plugins`` and ``plugins show KIND
NAME`` work as for the six top-level kinds (they go through :mod:`hookforge.registry`), and
switching a part on the command line (``model.encoder=conv``) starts it from its own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, ValidationError, WithJsonSchema


@dataclass
class SubSpec:
    """A sub-component chosen by a config: its kind, name, class and validated options."""

    kind: str
    name: str
    cls: type
    options: BaseModel

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """An instance of the part: ``cls(options, *args, **kwargs)``."""
        return self.cls(self.options, *args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options.model_dump(mode="json")}

    def __getattr__(self, item: str) -> Any:  # spec.hidden reads the part's option
        if item.startswith("_") or item in ("kind", "name", "cls", "options"):
            raise AttributeError(item)
        return getattr(self.options, item)


def _validator(kind: str) -> Any:
    def validate(value: Any) -> SubSpec:
        from hookforge import registry
        from hookforge.config.schema import format_validation_error
        from hookforge.errors import PluginError

        if isinstance(value, SubSpec):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ValueError(f"a {kind} as {{name: NAME, options...}} or its name (available: "
                             f"{', '.join(registry.names(kind)) or 'none installed'})")
        options = dict(value)
        name = options.pop("name")
        try:
            cls = registry.load(kind, name)
        except PluginError as exc:
            raise ValueError(str(exc)) from None
        config_cls = getattr(cls, "Config", None)
        if config_cls is None:
            raise ValueError(f"{kind} '{name}' has no Config class")
        try:
            validated = config_cls.model_validate(options)
        except ValidationError as exc:
            # the part's own error, its path relative to this field (the caller adds the rest)
            raise ValueError(format_validation_error(exc, "", f"{kind} '{name}'",
                                                     list(config_cls.model_fields),
                                                     config_cls)) from None
        return SubSpec(kind, name, cls, validated)

    return validate


def Sub(kind: str) -> Any:
    """The type of a sub-component field of ``kind`` (see the module docstring)."""
    return Annotated[
        SubSpec,
        BeforeValidator(_validator(kind)),
        PlainSerializer(lambda spec: spec.to_dict(), return_type=dict),
        WithJsonSchema({"type": "object", "description": f"a {kind}: {{name: NAME, options...}}",
                        "properties": {"name": {"type": "string"}}, "required": ["name"],
                        "x-hookforge-kind": kind}),
        SubKind(kind),
    ]


@dataclass(frozen=True)
class SubKind:
    """Marks a field as a sub-component of ``kind`` (read by the loader's reset-on-switch rule and
    by ``plugins show``)."""

    kind: str


def sub_field(default: str | dict[str, Any], description: str = "") -> Any:
    """The field of a :func:`Sub` type with a default part (validated like a given one)."""
    value = {"name": default} if isinstance(default, str) else dict(default)
    return Field(default_factory=lambda: dict(value), validate_default=True,
                 description=description or None)


def sub_kind_of(field: Any) -> str | None:
    """The sub-component kind of a pydantic field, or None."""
    for item in getattr(field, "metadata", []) or []:
        if isinstance(item, SubKind):
            return item.kind
    return None
