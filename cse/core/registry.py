"""The resource type registry, built once from ``resources/`` and passed in.

Each :class:`ResourceType` knows its type number, short name, JSON root
(``m2m:<sn>``), allowed parents, whether the API may create/update/delete it,
and one :class:`AttributePolicy` per attribute (universal ones included)
with the compiled JSON Schema validators for CREATE and UPDATE content.
Nothing here is global: ``Registry.load()`` is called by the composition root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry as RefRegistry, Resource

from . import declarations
from .errors import BadRequest
from .fast_schema import Check, Unsupported, compile_check

__all__ = ["AttributePolicy", "ResourceType", "Registry"]


@dataclass(frozen=True, slots=True)
class AttributePolicy:
    """How one attribute may appear in requests: M, O or NP at create/update.
    ``unsupported`` names the behaviour the attribute asks for when this CSE
    accepts it only with an inert value (absent, null, empty, false): any
    other value is 5001 (docs/releases.md "Refused behaviour")."""

    sn: str
    ln: str
    create: str
    update: str
    schema: Mapping[str, Any]
    unsupported: str | None = None


@dataclass(frozen=True)
class ResourceType:
    """One declared resource type and its request validators."""

    ty: int
    name: str
    sn: str
    parents: frozenset[int]
    attributes: Mapping[str, AttributePolicy]
    has_acpi: bool
    expires: bool
    state_tag: bool
    creator: bool
    can_create: bool
    can_update: bool
    can_delete: bool
    create_validator: Draft202012Validator = field(repr=False, compare=False)
    update_validator: Draft202012Validator = field(repr=False, compare=False)
    mandatory: tuple[str, ...] = ()
    # Fast yes/no checks of the same schemas (None: use the validator alone).
    create_check: Check | None = field(default=None, repr=False, compare=False)
    update_check: Check | None = field(default=None, repr=False, compare=False)

    @property
    def root(self) -> str:
        """The JSON root key, e.g. ``m2m:cnt``."""
        return f"m2m:{self.sn}"


# Which universal attributes a type has, from flags in its declaration.
_WHEN: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "all": lambda d: True,
    "acpi": lambda d: bool(d.get("acpi")),
    "expires": lambda d: bool(d.get("expires", True)),
    "stateTag": lambda d: bool(d.get("stateTag")),
    "creator": lambda d: bool(d.get("creator")),
    "announceable": lambda d: bool(d.get("announceable")),
}


class Registry:
    """All resource types by ``ty`` and by JSON root."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self.by_ty: dict[int, ResourceType] = {t.ty: t for t in types}
        self.by_root: dict[str, ResourceType] = {t.root: t for t in self.by_ty.values()}
        self.by_name: dict[str, ResourceType] = {t.name: t for t in self.by_ty.values()}
        names: set[str] = set()
        for t in self.by_ty.values():
            names.update(t.attributes)
        self.attribute_names: frozenset[str] = frozenset(names)

    def get(self, ty: int) -> ResourceType:
        """The type ``ty``; unknown types are the client's error (4000)."""
        rtype = self.by_ty.get(ty)
        if rtype is None:
            raise BadRequest(f"unknown or unsupported resource type ty={ty}")
        return rtype

    def child_types(self, ty: int) -> list[int]:
        """Types that may be created under a resource of type ``ty``."""
        return sorted(t.ty for t in self.by_ty.values() if ty in t.parents)

    @classmethod
    def load(cls) -> Registry:
        """Build the registry from the declarations shipped in ``resources``."""
        common = declarations.load_common_schema()
        refs = RefRegistry().with_resource("common", Resource.from_contents(common))
        universal = declarations.load_universal()["attributes"]
        decls = declarations.load_type_declarations()
        name_to_ty = {d["name"]: int(d["ty"]) for d in decls}
        types = []
        for d in decls:
            attrs: dict[str, AttributePolicy] = {}
            for sn, a in universal.items():
                if _WHEN[a["when"]](d):
                    attrs[sn] = AttributePolicy(sn, a["ln"], a["c"], a["u"], a["schema"], a.get("unsupported"))
            for sn, a in d.get("attributes", {}).items():
                attrs[sn] = AttributePolicy(sn, a["ln"], a["c"], a["u"], a["schema"], a.get("unsupported"))
            try:
                parents = frozenset(name_to_ty[p] for p in d.get("parents", []))
            except KeyError as exc:
                raise ValueError(f"{d['_file']}: unknown parent type {exc}") from None
            ops = d.get("operations", {})
            create_schema, update_schema = _schema(attrs, "create"), _schema(attrs, "update")
            types.append(ResourceType(
                ty=int(d["ty"]), name=d["name"], sn=d["sn"], parents=parents,
                attributes=attrs, has_acpi=bool(d.get("acpi")),
                expires=bool(d.get("expires", True)), state_tag=bool(d.get("stateTag")),
                creator=bool(d.get("creator")),
                can_create=bool(ops.get("create", True)),
                can_update=bool(ops.get("update", True)),
                can_delete=bool(ops.get("delete", True)),
                create_validator=Draft202012Validator(create_schema, registry=refs),
                update_validator=Draft202012Validator(update_schema, registry=refs),
                mandatory=tuple(sn for sn, p in attrs.items() if p.create == "M"),
                create_check=_fast(create_schema, common),
                update_check=_fast(update_schema, common),
            ))
        return cls(types)


def _schema(attrs: Mapping[str, AttributePolicy], op: str) -> dict[str, Any]:
    """One object schema per type and operation: the permitted attributes.

    On UPDATE an optional attribute may be ``null`` (which deletes it).
    Presence rules (M/NP/unknown) are checked before, with clearer messages.
    """
    props: dict[str, Any] = {}
    for sn, p in attrs.items():
        policy = p.create if op == "create" else p.update
        if policy == "NP":
            continue
        schema = dict(p.schema)
        if op == "update" and p.create != "M":
            schema = {"anyOf": [schema, {"type": "null"}]}
        props[sn] = schema
    schema = {"type": "object", "properties": props}
    Draft202012Validator.check_schema(schema)
    return schema


def _fast(schema: Mapping[str, Any], common: Mapping[str, Any]) -> Check | None:
    """The fast check of ``schema``, or None where it uses an unsupported keyword."""
    try:
        return compile_check(schema, common)
    except Unsupported:
        return None
