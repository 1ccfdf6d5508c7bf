"""Static guards on the shape of the core (AST only; nothing is imported or run).

Why: the CSE keeps one place that turns a decided change into effects -- the
executor (``cse/core/executor.py``) commits to the store, emits the events,
sends and arms the timers. Code that commits by itself skips the events, and
then subscribers and the expiry timer never hear of the change. State passed
implicitly (context variables) and components wired together after they were
built hide the same kind of coupling. These tests keep those three things out
of ``cse/`` (and context variables out of ``ae_sdk/``); each failure names
every offending ``file:line``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ae_sdk
import cse

ROOT = Path(cse.__file__).resolve().parent.parent
CSE_DIR = ROOT / "cse"
SDK_DIR = Path(ae_sdk.__file__).resolve().parent

# The only modules that may call ``.commit(...)`` on a store.
COMMIT_ALLOWED_FILES = {"cse/core/executor.py"}
COMMIT_ALLOWED_DIRS = ("cse/store/",)

# Attribute assignments on something other than ``self`` that are not wiring.
# Keyed by (file, assigned target as written); each carries why it is allowed.
NOT_WIRING: dict[tuple[str, str], str] = {
    ("cse/cluster.py", "m.config"): "the cluster launcher fills in its own per-member record (a child process it owns)",
    ("cse/cluster.py", "m.proc"): "the cluster launcher fills in its own per-member record (a child process it owns)",
    ("cse/cluster.py", "m.url"): "the cluster launcher fills in its own per-member record (a child process it owns)",
    ("cse/csf/notification.py", "q.batching"): "the notifier updates its own private per-target queue record",
    ("cse/csf/notification.py", "q.timer"): "the notifier updates its own private per-target queue record",
    ("cse/csf/notification.py", "q.latest"): "the notifier updates its own private per-target queue record",
    ("cse/csf/notification.py", "q.ec"): "the notifier updates its own private per-target queue record",
    ("cse/csf/notification.py", "q.events"): "the notifier updates its own private per-target queue record",
    ("cse/csf/notification.py", "q.sealed"): "the notifier updates its own private per-target queue record",
    ("cse/store/journal.py", "scan.size"): "scan_journal fills in the result record it builds and returns",
    ("cse/store/journal.py", "scan.good_size"): "scan_journal fills in the result record it builds and returns",
    ("cse/security/tls.py", "ctx.minimum_version"): "ssl.SSLContext is configured by attribute assignment (stdlib API)",
    ("cse/csf/smg/sessions.py", "err.rsc"): "sets the code of an exception the same function has just built",
}


def _py_files(directory: Path) -> list[Path]:
    files = sorted(directory.rglob("*.py"))
    assert files, f"no Python files under {directory}"
    return files


def _rel(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{_rel(path)}:{getattr(node, 'lineno', '?')}"


def _report(title: str, offenders: list[str]) -> str:
    """``title`` and the offenders, one per line, in file and line order."""
    def key(hit: str) -> tuple[str, int]:
        where = hit.split()[0]
        file, _, line = where.rpartition(":")
        return (file, int(line)) if line.isdigit() else (where, 0)
    unique = sorted(set(offenders), key=key)
    return f"{title} ({len(unique)}):\n  " + "\n  ".join(unique)


# -- a. only the executor commits ------------------------------------------------------------

def _commit_allowed(rel: str) -> bool:
    return rel in COMMIT_ALLOWED_FILES or rel.startswith(COMMIT_ALLOWED_DIRS)


def test_only_the_executor_commits_to_the_store() -> None:
    offenders = []
    for path in _py_files(CSE_DIR):
        if _commit_allowed(_rel(path)):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
                offenders.append(f"{_where(path, node)}  {ast.unparse(node.func)}(...)")
    assert not offenders, _report(
        "store commits outside cse/core/executor.py and cse/store/ (the executor must commit, "
        "so that every change emits its events)", offenders)


# -- b. no context variables -------------------------------------------------------------------

def _context_var_uses(path: Path) -> Iterator[str]:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "contextvars" or alias.name.startswith("contextvars."):
                    yield f"{_where(path, node)}  import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module == "contextvars":
            yield f"{_where(path, node)}  from contextvars import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.Name) and node.id == "ContextVar":
            yield f"{_where(path, node)}  ContextVar"
        elif isinstance(node, ast.Attribute) and node.attr == "ContextVar":
            yield f"{_where(path, node)}  {ast.unparse(node)}"


def test_no_context_variables() -> None:
    offenders = [hit for directory in (CSE_DIR, SDK_DIR) for path in _py_files(directory)
                 for hit in _context_var_uses(path)]
    assert not offenders, _report(
        "contextvars in cse/ or ae_sdk/ (pass state explicitly)", offenders)


# -- c. no wiring after construction -------------------------------------------------------------

def _assigned(node: ast.AST) -> Iterator[ast.expr]:
    """Every target an assignment statement binds, tuples unpacked."""
    if isinstance(node, ast.Assign):
        stack = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        stack = [node.target]
    else:
        return
    while stack:
        target = stack.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            stack.extend(target.elts)
        elif isinstance(target, ast.Starred):
            stack.append(target.value)
        else:
            yield target


def _foreign_attribute_assignments() -> Iterator[tuple[str, str, str]]:
    """(file, file:line, target) of each ``X.attr = ...`` where X is not ``self``."""
    for path in _py_files(CSE_DIR):
        rel = _rel(path)
        for node in ast.walk(_tree(path)):
            for target in _assigned(node):
                if isinstance(target, ast.Attribute) and not (
                        isinstance(target.value, ast.Name) and target.value.id == "self"):
                    yield rel, _where(path, node), ast.unparse(target)


def test_no_wiring_after_construction() -> None:
    offenders = [f"{where}  {target} = ..." for rel, where, target in _foreign_attribute_assignments()
                 if (rel, target) not in NOT_WIRING]
    assert not offenders, _report(
        "attributes of other objects assigned in cse/ (pass collaborators to the constructor instead)",
        offenders)


def test_not_wiring_entries_are_still_needed() -> None:
    """A stale allowance would silently allow a future assignment of the same name."""
    seen = {(rel, target) for rel, _, target in _foreign_attribute_assignments()}
    stale = [f"{rel}  {target}  ({why})" for (rel, target), why in NOT_WIRING.items() if (rel, target) not in seen]
    assert not stale, _report("NOT_WIRING entries that match nothing any more (remove them)", stale)
