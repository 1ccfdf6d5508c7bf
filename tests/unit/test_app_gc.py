"""A started CSE has frozen its resource table out of the cyclic collector's
generations, also when it started on an empty store (``cse.app`` ``start``,
``cse.store.indexed`` module docstring): otherwise every full collection
walks every resident resource, a pause that grows with the store."""

from __future__ import annotations

import gc

from cse.app import CSE
from cse.config import load_config
from cse.store.memory import MemoryStore

from ..conftest import FakeClock


async def test_the_resource_table_of_a_fresh_store_is_frozen_once_started() -> None:
    store = MemoryStore()
    cse = CSE(load_config(None, db=":memory:"), store=store, clock=FakeClock())
    await cse.start(serve_http=False)
    try:
        table = store._idx.docs  # the one container that refers to every document
        assert table, "the CSEBase is stored"
        assert gc.is_tracked(table)
        assert not any(o is table for o in gc.get_objects()), "walked by every full collection"
    finally:
        await cse.stop()
        gc.unfreeze()


async def test_a_started_cse_collects_its_young_generation_less_often() -> None:
    """Each HTTP request leaves some tracked objects to the collector; at
    CPython's default threshold (700) a young collection ran every few dozen
    requests, ~5% of a request's CPU (``cse.app`` ``_GC_YOUNG_THRESHOLD``).
    The older generations' thresholds are left as they were."""
    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])
    cse = CSE(load_config(None, db=":memory:"), store=MemoryStore(), clock=FakeClock())
    await cse.start(serve_http=False)
    try:
        young, older, oldest = gc.get_threshold()
        assert young >= 10_000
        assert (older, oldest) == before[1:]
    finally:
        await cse.stop()
        gc.unfreeze()
        gc.set_threshold(*before)
