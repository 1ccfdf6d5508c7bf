"""The resource type registry, built once from ``resources/`` and passed in.

Each :class:`ResourceType` knows its type number, short name, JSON root
(``m2m:<sn>``), allowed parents, whether the API may create/update/delete it,
and one :class:`AttributePolicy` per attribute (universal ones included)
with the compiled JSON Schema validators for CREATE and UPDATE content.
Nothing here is global: ``Registry.load()`` is called by the composition root.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry as RefRegistry, Resource

from . import declarations
from .errors import BadRequest
from .fast_schema import Check, Unsupported, compile_check

__all__ = ["AttributePolicy", "ResourceType", "Registry"]

# A specialization root of another namespace than m2m (``mio:occSr``), TS-0004 8.2.4.
_FOREIGN_ROOT = re.compile(r"^(?!m2m:)[a-z][A-Za-z0-9]{0,15}:[A-Za-z][A-Za-z0-9]{0,31}$")
_MAX_FOREIGN = 256


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
    # Specializations (TS-0004 7.4.15 mgmtObj by ``mgd``, 7.4.37 flexContainer
    # by ``cnd``): the attribute that tells them apart, its values for this
    # specialization (empty on the base), the base type's name, and on the
    # base the specializations by value.
    key_attr: str | None = None
    keys: tuple[Any, ...] = ()
    base: str | None = None
    variants: Mapping[Any, ResourceType] = field(default_factory=dict, repr=False, compare=False)
    # A base only its specializations may be created as (mgmtObj).
    abstract: bool = False
    # Unknown attribute names are custom attributes (a flexContainer whose
    # cnd this CSE does not know, TS-0001 9.6.35).
    custom_attributes: bool = False
    json_root: str | None = None
    # The instance type a history-keeping parent holds and evicts oldest
    # first, reachable as its ``la``/``ol`` virtual children (TS-0001 9.6.6,
    # 9.6.35, 9.6.36): contentInstance, flexContainerInstance, timeSeriesInstance.
    instance_ty: int | None = None

    @property
    def specializations(self) -> list[ResourceType]:
        """Each specialization once (one may have several key values), by root."""
        unique = {id(v): v for v in self.variants.values()}
        return sorted(unique.values(), key=lambda v: v.root)

    @property
    def root(self) -> str:
        """The JSON root key, e.g. ``m2m:cnt`` (``cod:binSh`` for a
        flexContainer specialization, which declares its own)."""
        return self.json_root or f"m2m:{self.sn}"


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
    """All resource types by ``ty`` and by JSON root.

    ``by_ty`` holds one type per number (a base, for specialized types);
    ``by_root`` and ``by_name`` hold specializations too.
    """

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self.by_ty: dict[int, ResourceType] = {t.ty: t for t in types}
        every = [*self.by_ty.values(), *(v for t in self.by_ty.values() for v in t.specializations)]
        self.by_root: dict[str, ResourceType] = {t.root: t for t in every}
        self.by_name: dict[str, ResourceType] = {t.name: t for t in every}
        names: set[str] = set()
        for t in every:
            names.update(t.attributes)
        self.attribute_names: frozenset[str] = frozenset(names)
        self._foreign: dict[tuple[int, str], ResourceType] = {}

    def of(self, doc: Mapping[str, Any]) -> ResourceType:
        """The type of a stored resource: its specialization where its type
        has them (by ``mgd`` or ``cnd``), else the type of its ``ty``."""
        rtype = self.get(doc["ty"])
        if rtype.key_attr is None:
            return rtype
        if "_root" in doc and rtype.custom_attributes:
            return self.generic_as(rtype, doc["_root"])
        key = doc.get(rtype.key_attr)
        if isinstance(key, (str, int)):
            return rtype.variants.get(key, rtype)
        return rtype

    def for_create(self, ty: int, pc: Any) -> ResourceType:
        """The type a CREATE of ``ty`` with content ``pc`` makes: for a type
        with specializations, the one its content root names (TS-0004
        7.4.15, 7.4.37). 4000 for an abstract base or a root of another type,
        and for the generic root with a ``cnd`` this CSE knows: such content
        is validated as that specialization, so it must use its root."""
        rtype = self.get(ty)
        if rtype.key_attr is None or not isinstance(pc, dict) or len(pc) != 1:
            return rtype
        (root, attrs), = pc.items()
        chosen = self.by_root.get(root)
        if chosen is not None and chosen.ty == ty and chosen.base == rtype.name:
            return chosen
        if rtype.abstract:
            roots = ", ".join(f"{v.root} ({v.name})" for v in rtype.specializations)
            raise BadRequest(f"a {rtype.name} (ty={ty}) is created as one of its specializations: {roots}; "
                             f"content root '{str(root)[:100]}' is none of them")
        key = attrs.get(rtype.key_attr) if isinstance(attrs, dict) else None
        known = rtype.variants.get(key) if isinstance(key, (str, int)) else None
        if known is not None and (root == rtype.root or root not in self.by_root):
            raise BadRequest(f"{rtype.key_attr} '{key}' is the {known.name} specialization: "
                             f"send the content as {{\"{known.root}\": {{...}}}}")
        if rtype.custom_attributes and isinstance(root, str) and _FOREIGN_ROOT.match(root) \
                and root not in self.by_root:
            return self.generic_as(rtype, root)
        return rtype

    def generic_as(self, rtype: ResourceType, root: str) -> ResourceType:
        """The generic ``rtype`` under a specialization root this CSE does not
        declare (``mio:occSr``): TS-0001 9.6.35 lets a flexContainer of any
        ``cnd`` carry custom attributes; it keeps the root it was created
        with (stored as ``_root``). Memoized (a copy costs ~20 µs), at most
        ``_MAX_FOREIGN`` roots, so what clients send cannot grow it unbounded;
        the memo changes no answer."""
        made = self._foreign.get((rtype.ty, root))
        if made is None:
            made = replace(rtype, json_root=root)
            if len(self._foreign) < _MAX_FOREIGN:
                self._foreign[(rtype.ty, root)] = made
        return made

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
    def load(cls, *, check_schemas: bool = False) -> Registry:
        """Build the registry from the declarations shipped in ``resources``.

        ``check_schemas``: also validate each type's CREATE and UPDATE
        schema against the JSON Schema 2020-12 metaschema.  Off at start-up:
        the declarations ship with the package and cannot change after it
        is built, so the test suite checks them once
        (tests/unit/test_registry_schemas.py), and the check costs about
        0.3 s of CPU at every start (66 schemas; the metaschema's dynamic
        references are slow to evaluate)."""
        common = declarations.load_common_schema()
        refs = RefRegistry().with_resource("common", Resource.from_contents(common))
        universal = declarations.load_universal()["attributes"]
        all_decls = declarations.load_type_declarations()
        decls = [d for d in all_decls if "specializes" not in d]
        specs: dict[str, list[dict[str, Any]]] = {}
        for d in all_decls:
            if "specializes" in d:
                specs.setdefault(d["specializes"], []).append(d)
        unknown = set(specs) - {d["name"] for d in decls}
        if unknown:
            raise ValueError(f"specialization of unknown type(s): {sorted(unknown)}")
        name_to_ty = {d["name"]: int(d["ty"]) for d in decls}

        def build(d: Mapping[str, Any], base: Mapping[str, Any] | None,
                  variants: Mapping[Any, ResourceType]) -> ResourceType:
            flags = base if base is not None else d  # a specialization has its base's flags
            attrs: dict[str, AttributePolicy] = {}
            for sn, a in universal.items():
                if _WHEN[a["when"]](flags):
                    attrs[sn] = AttributePolicy(sn, a["ln"], a["c"], a["u"], a["schema"], a.get("unsupported"))
            declared = {**(base.get("attributes", {}) if base is not None else {}), **d.get("attributes", {})}
            for sn, a in declared.items():
                attrs[sn] = AttributePolicy(sn, a["ln"], a["c"], a["u"], a["schema"], a.get("unsupported"))
            key_attr: str | None = flags.get("specializedBy")
            keys: tuple[Any, ...] = ()
            if base is not None and key_attr is not None:
                keys = tuple(d["key"]) if isinstance(d["key"], list) else (d["key"],)
                p = attrs[key_attr]  # only this specialization's values are valid
                attrs[key_attr] = AttributePolicy(p.sn, p.ln, p.create, p.update, {**p.schema, "enum": list(keys)})
            try:
                parents = frozenset(name_to_ty[p] for p in flags.get("parents", []))
            except KeyError as exc:
                raise ValueError(f"{d['_file']}: unknown parent type {exc}") from None
            ops = flags.get("operations", {})
            create_schema, update_schema = _schema(attrs, "create"), _schema(attrs, "update")
            if check_schemas:
                Draft202012Validator.check_schema(create_schema)
                Draft202012Validator.check_schema(update_schema)
            return ResourceType(
                ty=int(flags["ty"]), name=d["name"], sn=d["sn"], parents=parents,
                attributes=attrs, has_acpi=bool(flags.get("acpi")),
                expires=bool(flags.get("expires", True)), state_tag=bool(flags.get("stateTag")),
                creator=bool(flags.get("creator")),
                can_create=bool(ops.get("create", True)) and not (base is None and d.get("abstract")),
                can_update=bool(ops.get("update", True)),
                can_delete=bool(ops.get("delete", True)),
                create_validator=Draft202012Validator(create_schema, registry=refs),
                update_validator=Draft202012Validator(update_schema, registry=refs),
                mandatory=tuple(sn for sn, p in attrs.items() if p.create == "M"),
                create_check=_fast(create_schema, common),
                update_check=_fast(update_schema, common),
                key_attr=key_attr, keys=keys, base=base["name"] if base is not None else None,
                variants=variants, abstract=base is None and bool(d.get("abstract")),
                custom_attributes=base is None and bool(d.get("customAttributes")),
                json_root=d.get("root"),
                instance_ty=name_to_ty[flags["instances"]] if flags.get("instances") else None,
            )

        types = []
        for d in decls:
            variants: dict[Any, ResourceType] = {}
            for s in specs.get(d["name"], []):
                if not d.get("specializedBy"):
                    raise ValueError(f"{s['_file']}: {d['name']} declares no specializedBy attribute")
                v = build(s, d, {})
                for k in v.keys:
                    if k in variants:
                        raise ValueError(f"{s['_file']}: {d['specializedBy']} {k!r} is declared twice")
                    variants[k] = v
            types.append(build(d, None, variants))
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
    return {"type": "object", "properties": props}


def _fast(schema: Mapping[str, Any], common: Mapping[str, Any]) -> Check | None:
    """The fast check of ``schema``, or None where it uses an unsupported keyword."""
    try:
        return compile_check(schema, common)
    except Unsupported:
        return None
