"""``python -m cse store export|import``: a store's content from TinyDB into
PostgreSQL and back (docs/configuration.md "Moving a store between backends").

Why: moving a CSE between backends must keep every resource in creation
order and every KV entry (outbox, stored requests, sessions with their
wrapped keys) in insertion order, and a cut-off or foreign file, or a
target that already holds resources, must be refused before anything is
written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation, Request
from cse.core.ports import KvPut, Put
from cse.store.memory import MemoryStore
from cse.store.tinydb_store import TinyDBStore
from cse.store.transfer import TransferError, import_store, read_export
from tests.pg import pg_schema, pg_store, store_toml
from tests.store.test_pg_store import run_cse


def parsed(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def call(cse: CSE, op: Operation, to: str, fr: str, ty: int | None = None, pc: Any = None,
               **query: str) -> Any:
    r = await cse.handle(Request(op=op, to=to, fr=fr, rqi="t", ty=ty, pc=pc,
                                 query={k: (v,) for k, v in query.items()}))
    assert r.rsc in (2000, 2001), (r.rsc, r.pc)
    return r.pc


async def test_tinydb_to_postgresql_and_back_keeps_everything_in_order(tmp_path: Path) -> None:
    key = tmp_path / "store.key"
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'[store]\npath = "{tmp_path / "t" / "cse.db"}"\nkey_file = "{key}"\n')
    cse = CSE(load_config(str(tiny)))
    await cse.start(serve_http=False)
    aei = (await call(cse, Operation.CREATE, "cse-in", "C", 2,
                      {"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}}))["m2m:ae"]["aei"]
    await call(cse, Operation.CREATE, "cse-in/app", aei, 3, {"m2m:cnt": {"rn": "data"}})
    for i in (3, 1, 2):
        await call(cse, Operation.CREATE, "cse-in/app/data", aei, 4, {"m2m:cin": {"rn": f"c{i}", "con": "\u00e9"}})
    data = await call(cse, Operation.RETRIEVE, "cse-in/app/data", aei, rcn="4")
    await cse.stop()
    store = TinyDBStore(str(tmp_path / "t" / "cse.db"))  # more KV entries: their order must survive too
    await store.open()
    await store.commit([KvPut("t.order", "b2", {"t": "x"}), KvPut("t.order", "a1", 1),
                        KvPut("t.other", "r1", [1, None, "z"])])
    await store.close()

    out1 = tmp_path / "one.jsonl"
    code, text = await run_cse("--config", str(tiny), "store", "export", str(out1), cwd=tmp_path)
    assert code == 0 and "exported" in text, text
    assert out1.stat().st_mode & 0o077 == 0
    async with pg_schema() as schema:
        pg = tmp_path / "pg.toml"
        pg.write_text(f'[store]\n{store_toml(schema)}key_file = "{key}"\n')
        code, text = await run_cse("--config", str(pg), "store", "import", str(out1), cwd=tmp_path)
        assert code == 0 and "imported" in text, text
        # a second import into the now filled store is refused, nothing written
        code, text = await run_cse("--config", str(pg), "store", "import", str(out1), cwd=tmp_path)
        assert code == 1 and "already holds" in text, text

        on_pg = CSE(load_config(str(pg)))  # the same key file: the session key check passes
        await on_pg.start(serve_http=False)
        assert await call(on_pg, Operation.RETRIEVE, "cse-in/app/data", aei, rcn="4") == data
        assert [k for k, _ in await on_pg.store.kv_items("t.order")] == ["b2", "a1"]
        await on_pg.stop()

        out2 = tmp_path / "two.jsonl"
        code, text = await run_cse("--config", str(pg), "store", "export", str(out2), cwd=tmp_path)
        assert code == 0, text
        check = pg_store(schema)
        await check.open()
        held = await check.count()
        await check.close()
    first, second = parsed(out1), parsed(out2)
    assert sum(r["t"] == "doc" for r in second) == held
    assert [r.get("d", {}).get("ri") for r in first if r["t"] == "doc"] == \
        [r.get("d", {}).get("ri") for r in second if r["t"] == "doc"]
    # the same KV content in the same order, but the time the CSE on PostgreSQL last saw
    assert [r for r in first if r["t"] == "kv" and r["ns"] != "cse-clock"] == \
        [r for r in second if r["t"] == "kv" and r["ns"] != "cse-clock"] == [
            {"t": "kv", "ns": "t.order", "k": "b2", "v": {"t": "x"}}, {"t": "kv", "ns": "t.order", "k": "a1", "v": 1},
            {"t": "kv", "ns": "t.other", "k": "r1", "v": [1, None, "z"]}]

    back = tmp_path / "back.toml"
    back.write_text(f'[store]\npath = "{tmp_path / "b" / "cse.db"}"\nkey_file = "{key}"\n')
    code, text = await run_cse("--config", str(back), "store", "import", str(out2), cwd=tmp_path)
    assert code == 0, text
    again = CSE(load_config(str(back)))
    await again.start(serve_http=False)
    assert await call(again, Operation.RETRIEVE, "cse-in/app/data", aei, rcn="4") == data
    await again.stop()


def export_text(*records: Any) -> io.StringIO:
    return io.StringIO("".join(json.dumps(r) + "\n" for r in records))


HEAD = {"t": "cse-store", "v": 1}
DOC = {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in"}


@pytest.mark.parametrize(("records", "message"), [
    ([{"t": "other", "v": 1}], "not a cse-store export"),
    ([HEAD, {"t": "doc", "d": DOC}], "ends without its end record"),
    ([HEAD, {"t": "doc", "d": DOC}, {"t": "end", "docs": 2, "kv": 0}], "counts 2 documents"),
    ([HEAD, {"t": "doc", "d": {"ri": "x"}}, {"t": "end", "docs": 1, "kv": 0}], "is not valid"),
    ([HEAD, {"t": "end", "docs": 0, "kv": 0}, {"t": "doc", "d": DOC}], "follows the end record"),
    ([HEAD, {"t": "kv", "ns": 1, "k": "a"}], "unknown record"),
])
def test_a_foreign_cut_off_or_damaged_file_is_refused(records: list[Any], message: str) -> None:
    with pytest.raises(TransferError, match=message):
        read_export(export_text(*records))


async def test_import_refuses_a_store_holding_resources(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(export_text(HEAD, {"t": "doc", "d": DOC}, {"t": "end", "docs": 1, "kv": 0}).getvalue())
    store = MemoryStore()
    await store.commit([Put({**DOC, "ri": "other", "_srn": "x"})])
    with pytest.raises(TransferError, match="already holds 1 documents"):
        await import_store(store, str(path))
    assert await store.get("id-in") is None
