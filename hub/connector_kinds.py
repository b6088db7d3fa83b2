"""What each connector kind takes, as the admin pages' forms and GET /api/connector-kinds show
it: read from the kind's declarations (`options`, `required`, `secret_options`, and the hub's
own `HUB_OPTIONS`), so that a new kind gets its form without any web code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import HUB_OPTIONS, ConfigurationError, Connector
from connectors.registry import KINDS, connector_class


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    help: str
    required: bool = False
    secret: bool = False  # stored encrypted, never shown back
    hub: bool = False  # taken by every kind: what the hub does with the items

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "help": self.help,
            "required": self.required,
            "secret": self.secret,
            "hub": self.hub,
        }


@dataclass(frozen=True, slots=True)
class KindForm:
    kind: str
    fields: tuple[Field, ...]

    @property
    def settings(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.secret)

    @property
    def secrets(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.secret)

    def check_secrets(self, names: Mapping[str, object]) -> None:
        """Only the secrets the kind declares: anything else would be stored and never read."""
        declared = {f.name for f in self.secrets}
        unknown = sorted(set(names) - declared)
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigurationError(
                f"{self.kind}: unknown secret {', '.join(unknown)} (known: {known})"
            )

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": [f.as_json() for f in self.fields]}


def form_of(cls: type[Connector], kind: str) -> KindForm:
    """The kind's own settings first (required ones leading), its secrets, then the hub's."""
    own = [Field(name, text, name in cls.required) for name, text in cls.options.items()]
    own.sort(key=lambda f: not f.required)
    secrets = [Field(name, text, secret=True) for name, text in cls.secret_options.items()]
    shared = [Field(name, text, hub=True) for name, text in HUB_OPTIONS.items()]
    return KindForm(kind, (*own, *secrets, *shared))


def kind_form(kind: str) -> KindForm:
    """Raises ConfigurationError for a kind that cannot be loaded."""
    return form_of(connector_class(kind), kind)


def kind_forms() -> list[KindForm]:
    """Every registered kind, by name."""
    return [kind_form(kind) for kind in sorted(KINDS)]


def registered(kind: str) -> bool:
    """A kind the pages offer: registered by name. A third-party kind (a dotted path) is added
    as the CLI adds it; the pages never import a module a link names."""
    return kind in KINDS
