"""Addressing: the three ID forms, local vs remote, and new identifiers.

TS-0004 section 7.3.2.8 / docs/onem2m.md "Addressing". A To value is CSE-relative
(``cse-in/ae/cnt`` or ``cnt123``), SP-relative (``/id-in/...``) or absolute
(``//sp.example/id-in/...``). :func:`parse_to` decides whether it is ours and
splits what remains into a structured path or an ri plus child names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from .errors import BadRequest

__all__ = ["Target", "parse_to", "new_ri", "normalize_originator", "sp_relative", "is_ae_stem"]

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes.

    ``csi`` is the target CSE-ID (with the leading slash). For a local target
    ``structured`` says whether ``segments`` start at the CSEBase name (path
    of rn values) or with an ri (followed by child names, the hybrid form).
    """

    local: bool
    csi: str
    segments: tuple[str, ...]
    structured: bool

    @property
    def srn(self) -> str:
        """The structured path ``cse-in/a/b`` (only for structured targets)."""
        return "/".join(self.segments)


#: Targets up to this long are remembered (most requests repeat a few
#: targets); the cache holds at most ``_CACHED`` of them, about 1 MB at worst.
_CACHE_LEN = 256
_CACHED = 4096


def parse_to(to: str, csi: str, cb_name: str, sp_id: str | None = None) -> Target:
    """Classify ``to`` for the CSE ``csi`` whose CSEBase is named ``cb_name``.

    Empty segments, ``.``/``..`` and more than two leading slashes are 4000.
    A :class:`Target` is immutable, so a short target's is parsed once and
    shared (a refused one raises again: errors are not cached).
    """
    if len(to) <= _CACHE_LEN:
        return _parse_cached(to, csi, cb_name, sp_id)
    return _parse(to, csi, cb_name, sp_id)


def _parse(to: str, csi: str, cb_name: str, sp_id: str | None) -> Target:
    if not to:
        raise BadRequest("the request target (To) is empty")
    if to.startswith("///"):
        raise BadRequest(f"target '{_clip(to)}' has more than two leading slashes")
    if to.startswith("//"):
        parts = to[2:].split("/")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise BadRequest(f"absolute target '{_clip(to)}' must be //<sp-id>/<cse-id>/...")
        sp, target_csi, rest = parts[0], "/" + parts[1], parts[2:]
        local = target_csi == csi and (sp_id is None or sp == sp_id.lstrip("/"))
    elif to.startswith("/"):
        parts = to[1:].split("/")
        if not parts[0]:
            raise BadRequest(f"SP-relative target '{_clip(to)}' must be /<cse-id>/...")
        target_csi, rest = "/" + parts[0], parts[1:]
        local = target_csi == csi
    else:
        target_csi, rest, local = csi, to.split("/"), True
    for seg in rest:
        if seg in ("", ".", ".."):
            raise BadRequest(f"target '{_clip(to)}' has an empty, '.' or '..' path segment")
    if not local:
        return Target(False, target_csi, tuple(rest), True)
    if not rest:
        return Target(True, csi, (cb_name,), True)
    if rest[0] == "-":
        rest = [cb_name, *rest[1:]]
    return Target(True, csi, tuple(rest), rest[0] == cb_name)


_parse_cached = lru_cache(maxsize=_CACHED)(_parse)


class _Entropy:
    """``os.urandom`` read 4 KiB at a time: one system call per few hundred
    resource IDs instead of one per ID (same source, same randomness)."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def reset(self) -> None:
        """Forget the buffered bytes (a forked child must not reuse them)."""
        self._buf, self._pos = b"", 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._buf, self._pos = os.urandom(max(4096, n)), 0
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out


_ENTROPY = _Entropy()
_TO_ALNUM = bytes(ord(_ALNUM[b % 62]) for b in range(256))  # byte -> alphanumeric, as b % 62 did
os.register_at_fork(after_in_child=_ENTROPY.reset)  # a child never reuses the parent's bytes


def new_ri(prefix: str, n: int = 10) -> str:
    """A new resource ID: type short name + ``n`` random alphanumerics."""
    return prefix + _ENTROPY.take(n).translate(_TO_ALNUM).decode("ascii")


def normalize_originator(fr: str | None, csi: str) -> str | None:
    """Own-CSE SP-relative AE-IDs (``/id-in/Cabc``) become the bare stem."""
    if fr and fr.startswith(csi + "/"):
        stem = fr[len(csi) + 1:]
        if stem and "/" not in stem:
            return stem
    return fr


def sp_relative(csi: str, ri_or_path: str) -> str:
    """``/id-in`` + ``cnt1`` -> ``/id-in/cnt1``."""
    return f"{csi}/{ri_or_path}"


def is_ae_stem(value: str) -> bool:
    """True for C-/S-type AE-ID stems (``Cabc``, ``S123``)."""
    return len(value) >= 1 and value[0] in "CS" and "/" not in value


def _clip(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "..."
