"""Filter criteria: parse them from a query string, match them against resources.

Discovery (``fu=1``) and conditional retrieval (``fu=2``) share one set of
conditions (docs/onem2m.md "Discovery and filter criteria"). This module is pure: it turns the
decoded query parameters into an immutable :class:`FilterCriteria` once per
request and then answers :func:`matches` for each candidate resource, which
in a discovery over a large tree happens tens of thousands of times. So all
validation, splitting and wildcard compilation happens at parse time, and the
criteria carry a precompiled tuple of small check functions that
:func:`matches` just runs.

Comparisons follow the specification, not ACME (docs/onem2m.md "Choices",
first item): ``cra``/``ms``/``exa``/``stb``/``sza`` are inclusive (``v <= attr``),
``crb``/``us``/``exb``/``sts``/``szb`` are strict (``attr < v``), and ``lim``
caps the number of results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from cse.core.errors import BadRequest
from cse.core.timestamps import normalize_ts

__all__ = [
    "FilterCriteria",
    "FILTER_KEYS",
    "REQUEST_KEYS",
    "parse_filter_criteria",
    "matches",
    "ofst_lim_slice",
    "media_type_of",
]

T = TypeVar("T")

#: A precompiled condition: takes a resource document, says whether it matches.
Check = Callable[[Mapping[str, Any]], bool]

#: Every query key that belongs to the filter criteria.
FILTER_KEYS: frozenset[str] = frozenset({
    "fu", "fo", "ty", "lbl", "cty",
    "cra", "crb", "ms", "us", "exa", "exb",
    "sts", "stb", "sza", "szb",
    "lim", "ofst", "lvl", "arp",
})

#: Request parameters that share the query string but are not filter criteria;
#: the parser skips them so callers can hand it the whole query.
REQUEST_KEYS: frozenset[str] = frozenset({
    "rcn", "rt", "rp", "da", "drt", "atrl", "sessionID", "rqet", "rset", "oet",
})

# Attributes that oneM2M forbids as ``<attr>=`` filters because a
# dedicated condition exists; the message tells the client which one to use.
# (``lbl`` and ``ty`` are filter keys themselves, so they never get here.)
_DEDICATED_KEYS: dict[str, str] = {
    "ct": "cra/crb",
    "lt": "ms/us",
    "et": "exa/exb",
    "st": "sts/stb",
    "cs": "sza/szb",
    "cnf": "cty",
}

# Filter criteria defined by oneM2M that this CSE does not evaluate. They are
# rejected (never silently ignored: ignoring a condition widens the result)
# with a clearer message than "unknown attribute".
_UNSUPPORTED_KEYS: frozenset[str] = frozenset({
    "lbq", "smf", "cfs", "cfq", "chty", "pty", "clbl", "palb", "catr", "patr",
    "gq", "atr",
})
_UNSUPPORTED_PREFIXES: tuple[str, ...] = ("c.", "p.")

_LIST_SPLIT = re.compile(r"[\s+]+")
_INT = re.compile(r"-?[0-9]+")  # ASCII only: int() would also accept "1_0", "١"
_CANONICAL_TS = re.compile(r"[0-9]{8}T[0-9]{6},[0-9]{6}")


# --------------------------------------------------------------------------
# The criteria
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterCriteria:
    """Validated filter criteria of one request.

    The public fields mirror the query keys; timestamps are canonical
    (``YYYYMMDDThhmmss,ffffff``) so they compare as strings against stored
    ``ct``/``lt``/``et``. The private fields are derived in ``__post_init__``
    (also when built directly or via ``dataclasses.replace``) so that
    :func:`matches` does no per-call parsing or regex compilation.
    """

    fu: int = 2
    fo: int = 1
    ty: tuple[int, ...] = ()
    lbl: tuple[str, ...] = ()
    cty: tuple[str, ...] = ()
    cra: str | None = None
    crb: str | None = None
    ms: str | None = None
    us: str | None = None
    exa: str | None = None
    exb: str | None = None
    sts: int | None = None
    stb: int | None = None
    sza: int | None = None
    szb: int | None = None
    attrs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    lim: int | None = None
    ofst: int | None = None
    lvl: int | None = None
    arp: str | None = None
    _checks: tuple[Check, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Precompile the conditions once; frozen, hence ``object.__setattr__``."""
        object.__setattr__(self, "_checks", _build_checks(self))

    @property
    def has_conditions(self) -> bool:
        """True if any matching condition is set.

        ``fu``, ``fo``, ``lim``, ``ofst``, ``lvl`` and ``arp`` shape the
        result but select nothing, so they do not count: callers use this to
        skip matching entirely.
        """
        return bool(self._checks)

    @property
    def checks_beyond_ty_lbl(self) -> tuple[Check, ...]:
        """The conditions besides ``ty`` and ``lbl`` (``fo=1``: what a
        resource the type and label indexes selected must still satisfy;
        cse.csf.discovery).  ``_build_checks`` puts those two first."""
        return self._checks[bool(self.ty) + bool(self.lbl):]


# --------------------------------------------------------------------------
# Precompiled checks
# --------------------------------------------------------------------------


def _ts_lt(attr: str, v: str) -> Check:
    """``attr < v`` on canonical timestamp strings (crb, us, exb)."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get(attr)
        return isinstance(x, str) and x < v
    return check


def _ts_ge(attr: str, v: str) -> Check:
    """``v <= attr`` on canonical timestamp strings (cra, ms, exa)."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get(attr)
        return isinstance(x, str) and v <= x
    return check


def _num_lt(attr: str, v: int) -> Check:
    """``attr < v`` on numbers (sts, szb); bools are not numbers here."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get(attr)
        return isinstance(x, (int, float)) and not isinstance(x, bool) and x < v
    return check


def _num_ge(attr: str, v: int) -> Check:
    """``v <= attr`` on numbers (stb, sza)."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get(attr)
        return isinstance(x, (int, float)) and not isinstance(x, bool) and v <= x
    return check


def _ty_check(types: frozenset[int]) -> Check:
    """Resource type is one of the requested ones."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get("ty")
        return isinstance(x, int) and x in types
    return check


def _lbl_check(labels: frozenset[str]) -> Check:
    """Any requested label equals any label of the resource."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get("lbl")
        if not isinstance(x, (list, tuple)):
            return False
        for item in x:
            if isinstance(item, str) and item in labels:
                return True
        return False
    return check


def media_type_of(cnf: str) -> str:
    """The media-type part of a ``cnf`` (``text/plain:0`` -> ``text/plain``).

    Lower-cased and without parameters, because media types compare
    case-insensitively and ``; charset=...`` is not part of the type.
    """
    return cnf.partition(":")[0].partition(";")[0].strip().lower()


def _cty_check(types: frozenset[str]) -> Check:
    """Media type of the resource's ``cnf`` is one of the requested ones."""
    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get("cnf")
        return isinstance(x, str) and media_type_of(x) in types
    return check


def _as_filter_string(value: Any) -> str | None:
    """String form of a scalar attribute value for equality with a query value.

    Query values are text, so ``true``/``false`` for booleans and the decimal
    form for numbers; anything structured has no string form (no match).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _attr_check(name: str, exact: frozenset[str], patterns: tuple[re.Pattern[str], ...]) -> Check:
    """Attribute ``name`` equals one of the values (``*`` = any run of chars).

    A list attribute matches if any of its elements does.
    """
    def scalar(value: Any) -> bool:
        s = _as_filter_string(value)
        if s is None:
            return False
        if s in exact:
            return True
        for p in patterns:
            if p.fullmatch(s) is not None:
                return True
        return False

    def check(doc: Mapping[str, Any]) -> bool:
        x = doc.get(name)
        if x is None:
            return False
        if isinstance(x, (list, tuple)):
            for item in x:
                if scalar(item):
                    return True
            return False
        return scalar(x)

    def never(doc: Mapping[str, Any]) -> bool:
        return False

    # Internal (``_``-prefixed) keys of a stored document are not attributes.
    return never if name.startswith("_") else check


@lru_cache(maxsize=1024)
def _compile_wildcard(pattern: str) -> re.Pattern[str]:
    """``sens*`` -> a regex matching any run of characters for each ``*``.

    Cached because the same patterns recur across requests.
    """
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _build_checks(fc: FilterCriteria) -> tuple[Check, ...]:
    """One check per condition key, cheapest and most selective first."""
    checks: list[Check] = []
    if fc.ty:
        checks.append(_ty_check(frozenset(fc.ty)))
    if fc.lbl:
        checks.append(_lbl_check(frozenset(fc.lbl)))
    if fc.cty:
        checks.append(_cty_check(frozenset(c.partition(";")[0].strip().lower() for c in fc.cty)))
    for value, make, attr in (
        (fc.cra, _ts_ge, "ct"), (fc.crb, _ts_lt, "ct"),
        (fc.ms, _ts_ge, "lt"), (fc.us, _ts_lt, "lt"),
        (fc.exa, _ts_ge, "et"), (fc.exb, _ts_lt, "et"),
    ):
        if value is not None:
            checks.append(make(attr, value))
    for num, make_num, attr in (
        (fc.stb, _num_ge, "st"), (fc.sts, _num_lt, "st"),
        (fc.sza, _num_ge, "cs"), (fc.szb, _num_lt, "cs"),
    ):
        if num is not None:
            checks.append(make_num(attr, num))
    for name, values in fc.attrs:
        exact = frozenset(v for v in values if "*" not in v)
        patterns = tuple(_compile_wildcard(v) for v in values if "*" in v)
        checks.append(_attr_check(name, exact, patterns))
    return tuple(checks)


# --------------------------------------------------------------------------
# Matching and slicing
# --------------------------------------------------------------------------


def matches(fc: FilterCriteria, doc: Mapping[str, Any]) -> bool:
    """Whether resource ``doc`` satisfies the conditions of ``fc``.

    Different condition keys are ANDed (``fo=1``) or ORed (``fo=2``); the
    values of one key are always ORed. A condition on an attribute the
    resource lacks does not match. No conditions at all -> True.
    """
    checks = fc._checks
    if not checks:
        return True
    if fc.fo == 2:
        for check in checks:
            if check(doc):
                return True
        return False
    for check in checks:
        if not check(doc):
            return False
    return True


def ofst_lim_slice(items: list[T], fc: FilterCriteria | None) -> list[T]:
    """Apply ``ofst`` (1-based: 1 = start at the first item) and ``lim``.

    Always returns a new list so callers may mutate it freely.
    """
    if fc is None:
        return list(items)
    start = (fc.ofst or 1) - 1
    if fc.lim is None:
        return items[start:]
    return items[start:start + fc.lim]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _values(key: str, raw: Sequence[str] | str) -> list[str]:
    """The raw values of one key; a bare string counts as one value."""
    if isinstance(raw, str):
        return [raw]
    out: list[str] = []
    for v in raw:
        if not isinstance(v, str):
            raise BadRequest(f"invalid value for '{key}': expected text, got {type(v).__name__}")
        out.append(v)
    return out


def _tokens(key: str, raw: Sequence[str] | str) -> list[str]:
    """Split list values on whitespace and ``+`` (a decoded ``+`` is often a space)."""
    out: list[str] = []
    for v in _values(key, raw):
        out.extend(t for t in _LIST_SPLIT.split(v) if t)
    if not out:
        raise BadRequest(f"query parameter '{key}' needs a value")
    return out


#: The most segments an ``arp`` path may have: the deepest tree a CSE holds by default.
ARP_MAX_SEGMENTS = 64


def _single(key: str, raw: Sequence[str] | str) -> str:
    """The one value of a scalar key; lists and repeats are errors, not 'take the first'."""
    tokens = _tokens(key, raw)
    if len(tokens) != 1:
        raise BadRequest(f"query parameter '{key}' takes a single value, got {len(tokens)}")
    return tokens[0]


def _parse_int(key: str, token: str) -> int:
    """A non-negative decimal integer, or BadRequest naming the key."""
    if _INT.fullmatch(token) is None or len(token) > 18:
        raise BadRequest(f"invalid value '{token[:40]}' for '{key}': not an integer in range")
    value = int(token)
    if value < 0:
        raise BadRequest(f"invalid value '{token}' for '{key}': must not be negative")
    return value


def _parse_ts(key: str, token: str) -> str:
    """A timestamp filter value in canonical form, or BadRequest naming the key."""
    try:
        ts = normalize_ts(token)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"invalid timestamp for '{key}': {exc}") from None
    # Years before 1000 would not format as four digits and so would not
    # compare correctly as strings; no resource can predate them anyway.
    if _CANONICAL_TS.fullmatch(ts) is None:
        raise BadRequest(f"invalid timestamp for '{key}': '{token}' is out of range")
    return ts


def _parse_cty(raw: Sequence[str] | str) -> tuple[str, ...]:
    """Media types, split like other lists but keeping ``+suffix`` subtypes.

    ``application/vnd.onem2m-res+json`` contains a ``+`` that is not a list
    separator: a piece without ``/`` is a structured-syntax suffix and is
    glued back onto the media type before it.
    """
    out: list[str] = []
    for piece in _tokens("cty", raw):
        if "/" in piece:
            out.append(piece.lower())
        elif out:
            out[-1] += "+" + piece.lower()
        else:
            raise BadRequest(f"invalid value '{piece}' for 'cty': not a media type (type/subtype)")
    return tuple(out)


def parse_filter_criteria(
    params: Mapping[str, Sequence[str]],
    known_attributes: Container[str],
) -> FilterCriteria | None:
    """:func:`parse_filter_criteria_uncached`, remembered for the last
    :data:`_PARSED_KEEP` queries: clients repeat the same query, and a
    FilterCriteria is immutable (errors are not remembered: each is raised again)."""
    if isinstance(known_attributes, frozenset):
        try:
            return _parse_remembered(tuple(params.items()), known_attributes)
        except TypeError:  # a value that is not hashable: parse it as given
            pass
    return parse_filter_criteria_uncached(params, known_attributes)


#: How many distinct queries :func:`parse_filter_criteria` remembers.
_PARSED_KEEP = 256


@lru_cache(maxsize=_PARSED_KEEP)
def _parse_remembered(items: tuple[tuple[str, Sequence[str]], ...],
                      known_attributes: frozenset[str]) -> FilterCriteria | None:
    return parse_filter_criteria_uncached(dict(items), known_attributes)


def parse_filter_criteria_uncached(
    params: Mapping[str, Sequence[str]],
    known_attributes: Container[str],
) -> FilterCriteria | None:
    """Build the filter criteria of a request from its decoded query parameters.

    ``params`` maps each key to its list of raw values. Request parameters
    (:data:`REQUEST_KEYS`) are skipped; any other non-filter key must be a
    known attribute short name and becomes an attribute filter. Every bad
    input raises :class:`BadRequest` naming the key. Returns None when the
    query holds no filter key and no attribute filter, so callers can tell
    "no filtering requested" apart from "filter that matches everything".
    """
    found = False
    kw: dict[str, Any] = {}
    attrs: list[tuple[str, tuple[str, ...]]] = []

    for key, raw in params.items():
        if not isinstance(key, str) or key in REQUEST_KEYS:
            continue
        if key in FILTER_KEYS:
            found = True
            kw[key] = _parse_filter_key(key, raw)
            continue
        if key in _DEDICATED_KEYS:
            raise BadRequest(
                f"'{key}' cannot be used as an attribute filter; "
                f"use {_DEDICATED_KEYS[key]} instead")
        if key in _UNSUPPORTED_KEYS or key.startswith(_UNSUPPORTED_PREFIXES):
            raise BadRequest(f"filter criterion '{key}' is not supported")
        if key.startswith("_") or key not in known_attributes:
            raise BadRequest(f"unknown query parameter or attribute '{key}'")
        found = True
        attrs.append((key, tuple(dict.fromkeys(_tokens(key, raw)))))

    if not found:
        return None
    if attrs:
        kw["attrs"] = tuple(attrs)
    return FilterCriteria(**kw)


def _parse_filter_key(key: str, raw: Sequence[str] | str) -> Any:
    """Parse and validate the value(s) of one filter key."""
    if key == "ty":
        types = tuple(dict.fromkeys(_parse_int("ty", t) for t in _tokens("ty", raw)))
        if 0 in types:
            raise BadRequest("invalid value '0' for 'ty': not a resource type")
        return types
    if key == "lbl":
        return tuple(dict.fromkeys(_tokens("lbl", raw)))
    if key == "cty":
        return tuple(dict.fromkeys(_parse_cty(raw)))
    if key == "arp":
        path = _single("arp", raw)
        if path.count("/") >= ARP_MAX_SEGMENTS:
            # each segment is one store lookup per match (docs/security.md "Limits")
            raise BadRequest(f"applyRelativePath (arp) has more than {ARP_MAX_SEGMENTS} segments")
        return path
    token = _single(key, raw)
    if key in ("cra", "crb", "ms", "us", "exa", "exb"):
        return _parse_ts(key, token)
    value = _parse_int(key, token)
    if key == "fu":
        if value == 3:
            raise BadRequest("fu=3 (IPE on-demand discovery) is not supported")
        if value not in (1, 2):
            raise BadRequest(
                f"invalid value '{token}' for 'fu': "
                "must be 1 (discovery) or 2 (conditional retrieval)")
    elif key == "fo":
        if value not in (1, 2):
            raise BadRequest(f"invalid value '{token}' for 'fo': must be 1 (AND) or 2 (OR)")
    elif key == "ofst":
        value = max(value, 1)  # ofst=0 means the same as the default, 1
    elif key == "lvl":
        if value < 1:
            raise BadRequest(f"invalid value '{token}' for 'lvl': must be at least 1")
    return value
