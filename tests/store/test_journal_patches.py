"""Replacements are journalled as patches and replay to the same documents.

A session's context grows by one bounded-history entry per request; the
journal records only that entry (plus what else changed) instead of the
whole document again. Replay must rebuild exactly what was in memory,
whatever mix of set, removed, shifted and replaced attributes a commit had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from cse.core.ports import Delete, Doc, KvPut, Put
from cse.store.journal import Patch, apply_patch, encode_record, scan_journal
from cse.store.tinydb_store import TinyDBStore


def base() -> Doc:
    return {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in"}


def session(hst: list[dict[str, Any]], rqn: int) -> Doc:
    return {"ri": "s1", "ty": 9002, "rn": "s1", "pi": "id-in", "_srn": "cse-in/s1", "sid": "x" * 32,
            "sec": {"k": "y" * 44}, "hst": hst, "rqn": rqn}


async def reopen(path: str) -> TinyDBStore:
    store = TinyDBStore(path)
    await store.open()
    return store


def _payload(line: bytes) -> dict[str, Any]:
    return json.loads(line[9:])


def test_a_bounded_history_append_is_journalled_as_its_new_entry() -> None:
    old = session([{"rqi": f"r{i}", "rsc": 2004} for i in range(50)], 50)
    entry = {"rqi": "r50", "rsc": 2004}
    new = {**old, "hst": [*old["hst"], entry][-50:], "rqn": 51}
    line = encode_record(7, [Put(new)], {"s1": old}.get)
    [op] = _payload(line)["o"]
    assert op == ["u", "s1", {"rqn": 51}, [], {"hst": [1, [entry]]}]
    assert len(line) < len(encode_record(7, [Put(new)])) / 10
    rebuilt = apply_patch(old, Patch(op[1], op[2], op[3], op[4]))
    assert rebuilt == new


def test_a_batch_of_history_entries_is_journalled_as_its_new_entries() -> None:
    """Store-and-forward records the answers of a batch of deliveries in one
    commit: the history gains several entries at once (the oldest shifted
    out) and only those are journalled."""
    old = session([{"rqi": f"r{i}", "rsc": 2001} for i in range(50)], 50)
    batch = [{"rqi": f"r{50 + i}", "rsc": 2001} for i in range(7)]
    new = {**old, "hst": [*old["hst"], *batch][-50:], "rqn": 57}
    line = encode_record(8, [Put(new)], {"s1": old}.get)
    [op] = _payload(line)["o"]
    assert op == ["u", "s1", {"rqn": 57}, [], {"hst": [7, batch]}]
    assert apply_patch(old, Patch(op[1], op[2], op[3], op[4])) == new
    short = session([{"rqi": "a"}], 1)  # a history not full yet grows by the batch
    grown = {**short, "hst": [*short["hst"], *batch], "rqn": 8}
    [op] = _payload(encode_record(9, [Put(grown)], {"s1": short}.get))["o"]
    assert op[4] == {"hst": [0, batch]}
    assert apply_patch(short, Patch(op[1], op[2], op[3], op[4])) == grown


def test_removed_and_replaced_attributes_and_new_documents() -> None:
    old = {**session([], 0), "lbl": ["a"], "et": "20300101T000000"}
    new = {k: v for k, v in old.items() if k != "lbl"}
    new["et"] = "20310101T000000"
    new["hst"] = [{"rqi": "r0"}]
    fresh = {**base(), "ri": "c1", "rn": "c1", "pi": "id-in", "_srn": "cse-in/c1", "ty": 3}
    ops = _payload(encode_record(1, [Put(new), Put(fresh)], {"s1": old}.get))["o"]
    assert ops[0] == ["u", "s1", {"et": "20310101T000000"}, ["lbl"], {"hst": [0, [{"rqi": "r0"}]]}]
    assert ops[1] == ["p", fresh]  # not stored before: whole


def test_moves_and_puts_after_a_delete_are_journalled_whole() -> None:
    old = session([], 0)
    moved = {**old, "pi": "elsewhere"}
    assert _payload(encode_record(1, [Put(moved)], {"s1": old}.get))["o"][0][0] == "p"
    again = {**old, "rqn": 1}
    ops = _payload(encode_record(1, [Delete("x"), Put(again)], {"s1": old}.get))["o"]
    assert [o[0] for o in ops] == ["d", "p"]


async def test_history_churn_survives_reopen_and_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = await reopen(path)
    await store.commit([Put(base()), Put(session([], 0))])
    for i in range(300):  # shifts the bounded history 250 times
        cur = await store.get("s1")
        assert cur is not None
        entry = {"rqi": f"r{i}", "op": 3, "rsc": 2004}
        await store.commit([Put({**cur, "hst": [*cur["hst"], entry][-50:], "rqn": cur["rqn"] + 1}),
                            KvPut("replay:s1", f"r{i}", {"rsc": 2004})])
        if i == 120:  # a second update of the same document in one commit
            cur = await store.get("s1")
            assert cur is not None
            await store.commit([Put({**cur, "sst": 2}), Put({**cur, "sst": 3, "hst": cur["hst"][-3:]})])
    expected = await store.get("s1")
    assert expected is not None
    journal_size = Path(path + ".journal").stat().st_size
    await store.abort()  # as kill -9 leaves it: only the journal holds the data
    assert journal_size < 300 * 400  # an entry per commit, not 50
    store = await reopen(path)  # replays every patch
    assert await store.get("s1") == expected
    assert len(expected["hst"]) == 50 and expected["hst"][-1]["rqi"] == "r299"
    await store.close()  # compacts into the snapshot
    store = await reopen(path)
    assert await store.get("s1") == expected
    await store.close()


@st.composite
def edits(draw: st.DrawFn) -> list[tuple[str, Any]]:
    keys = st.sampled_from(["a", "b", "lst", "nested"])
    values = st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
    return draw(st.lists(st.one_of(
        st.tuples(st.just("set"), st.tuples(keys, values)),
        st.tuples(st.just("unset"), keys),
        st.tuples(st.just("append"), st.tuples(st.integers(0, 3), st.integers())),
    ), min_size=1, max_size=30))


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(edits())
def test_any_edit_sequence_replays_exactly(tmp_path_factory: Any, steps: list[tuple[str, Any]]) -> None:
    # The durable path end to end is covered above; here the codec alone,
    # through the journal's own scanner, over arbitrary edit sequences.
    path = tmp_path_factory.mktemp("p") / "j"
    doc: Doc = {"ri": "d", "ty": 3, "rn": "d", "pi": "id-in", "_srn": "cse-in/d", "lst": []}
    lines = [encode_record(1, [Put(doc)])]
    for seq, (kind, arg) in enumerate(steps, start=2):
        new = dict(doc)
        if kind == "set":
            new[arg[0]] = arg[1]
        elif kind == "unset":
            new.pop(arg, None)
        else:
            cap, value = arg
            lst = new.get("lst") if isinstance(new.get("lst"), list) else []
            new["lst"] = [*lst, value][-cap:] if cap else [*lst, value]
        lines.append(encode_record(seq, [Put(new)], {"d": doc}.get))
        doc = new
    path.write_bytes(b"".join(lines))
    replayed: Doc | None = None
    for _, ops in scan_journal(str(path)).records:
        for op in ops:
            if isinstance(op, Patch):
                assert replayed is not None
                replayed = apply_patch(replayed, op)
            else:
                assert isinstance(op, Put)
                replayed = op.doc
    assert replayed == doc
