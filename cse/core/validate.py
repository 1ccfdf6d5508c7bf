"""Validation of request content against a resource type's declaration.

Order matters for the messages users see: the root key first, then unknown
attributes, then not-permitted ones, then missing mandatory ones, then the
JSON Schema of each present attribute. Every failure is a 4000 whose dbg
names the attribute -- except a value asking for behaviour this CSE does not
implement (an attribute declared ``unsupported``), which is 5001.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema.exceptions import ValidationError

from .errors import BadRequest, NotImplementedOp
from .registry import ResourceType

__all__ = ["extract_attributes", "validate_create", "validate_update"]

_MAX_MSG = 200
_INERT: tuple[Any, ...] = (None, [], {}, "", False)  # what an attribute of unsupported behaviour may hold
# A custom attribute name (a flexContainer of unknown cnd, TS-0001 9.6.35): a
# short name as TS-0004 6.2 forms them, not an internal key (docs/onem2m.md "flexContainer").
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}$")
_MAX_CUSTOM = 64


def extract_attributes(rtype: ResourceType, pc: Any) -> dict[str, Any]:
    """The attribute object inside ``{"m2m:<sn>": {...}}``; 4000 otherwise."""
    if not isinstance(pc, dict) or len(pc) != 1:
        raise BadRequest(f"content must be a single object {{\"{rtype.root}\": {{...}}}}")
    (key, attrs), = pc.items()
    if key != rtype.root:
        raise BadRequest(
            f"content root '{_clip(key)}' does not match the resource type: "
            f"expected '{rtype.root}' for ty={rtype.ty} ({rtype.name})")
    if not isinstance(attrs, dict):
        raise BadRequest(f"'{rtype.root}' must be a JSON object")
    return attrs


def validate_create(rtype: ResourceType, attrs: dict[str, Any]) -> None:
    """Presence rules and schemas for CREATE content."""
    _check(rtype, attrs, "create")
    for sn in rtype.mandatory:
        if sn not in attrs:
            raise BadRequest(f"mandatory attribute '{sn}' ({rtype.attributes[sn].ln}) is missing")
    check = rtype.create_check
    if check is None or not check(attrs):
        _schema(rtype, rtype.create_validator, attrs)


def validate_update(rtype: ResourceType, attrs: dict[str, Any]) -> None:
    """Presence rules and schemas for UPDATE content."""
    if not attrs:
        raise BadRequest(f"UPDATE content '{rtype.root}' has no attribute to change")
    _check(rtype, attrs, "update")
    check = rtype.update_check
    if check is None or not check(attrs):
        _schema(rtype, rtype.update_validator, attrs)


def _check(rtype: ResourceType, attrs: dict[str, Any], op: str) -> None:
    policies = rtype.attributes
    custom = 0
    for sn in attrs:
        p = policies.get(sn)
        if p is None:
            if rtype.custom_attributes and _CUSTOM_NAME.match(sn):
                custom += 1
                if custom > _MAX_CUSTOM:
                    raise BadRequest(f"more than {_MAX_CUSTOM} custom attributes in one request "
                                     f"(docs/onem2m.md \"flexContainer\")")
                continue
            raise BadRequest(f"unknown attribute '{_clip(sn)}' for {rtype.name} ({rtype.root})")
        if (p.create if op == "create" else p.update) == "NP":
            raise BadRequest(f"attribute '{sn}' ({p.ln}) is not permitted at {op}")
        if p.unsupported is not None and attrs[sn] not in _INERT:
            raise NotImplementedOp(
                f"attribute '{sn}' ({p.ln}): {p.unsupported} is not implemented by this CSE; "
                "omit it or send it empty (docs/releases.md)")


def _schema(rtype: ResourceType, validator: Any, attrs: dict[str, Any]) -> None:
    """Find and word the first schema error; jsonschema is the authority
    (the fast check in the registry only spares it for valid content)."""
    error: ValidationError | None = next(validator.iter_errors(attrs), None)
    if error is None:
        return
    best = error
    if best.context:  # anyOf: report the branch closest to the value
        best = min(best.context, key=lambda e: len(e.path))
    path = ".".join(str(p) for p in best.absolute_path) or "content"
    message = best.message
    if best.validator in ("pattern", "not", "enum"):
        top = rtype.attributes.get(str(best.absolute_path[0])) if best.absolute_path else None
        what = f" for {top.ln}" if top is not None else ""
        message = f"value {_clip(repr(best.instance))} is not valid{what}"
    raise BadRequest(f"attribute '{path}': {_clip(message)}")


def _clip(text: str) -> str:
    text = str(text)
    return text if len(text) <= _MAX_MSG else text[:_MAX_MSG] + "..."
