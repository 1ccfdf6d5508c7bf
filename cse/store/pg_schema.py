"""The PostgreSQL store's schema and its migrations (docs/configuration.md "PostgreSQL store").

Why the CSE migrates its own schema: an operator points ``[store] dsn`` at
an empty database (or schema) and starts the CSE; nothing else has to run
first.  Each migration is a list of SQL statements applied in one
transaction together with the row that records it in ``schema_version``,
under a transaction-level advisory lock, so two CSE processes starting at
once on the same schema apply every step exactly once.  A schema newer than
this code knows is refused rather than guessed at.

Every text column compares with ``COLLATE "C"`` (byte order): ``et`` values
must order exactly as Python compares the strings (``expired`` returns them
oldest first, ties by ``ri``), whatever collation the database has.
"""

from __future__ import annotations

import re

__all__ = ["MIGRATIONS", "LATEST", "ADVISORY_LOCK_KEY", "CHANGE_LOG_KEEP", "valid_schema_name"]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def valid_schema_name(name: str) -> bool:
    """A plain SQL identifier (letters, digits, underscore; used quoted but never escaped)."""
    return _SCHEMA_NAME.fullmatch(name) is not None


#: Key of the advisory lock held while migrating (any constant; "cse1" in ASCII).
ADVISORY_LOCK_KEY = 0x63736531

#: (version, statements): applied in order, each version once.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        # One row per resource: the document as JSONB plus the columns the
        # Store port looks things up by (cse.core.ports.Store).  ``seq`` is
        # the creation order (children, newest/oldest): a replace keeps it
        # unless the parent or type changes (cse.store.indexed "Resolved
        # ambiguities").
        """CREATE SEQUENCE doc_seq""",
        """CREATE TABLE doc (
            ri  text COLLATE "C" PRIMARY KEY,
            pi  text COLLATE "C" NOT NULL,
            rn  text COLLATE "C" NOT NULL,
            ty  integer NOT NULL,
            srn text COLLATE "C" NOT NULL,
            seq bigint NOT NULL,
            et  text COLLATE "C",
            aei text COLLATE "C",
            csi text COLLATE "C",
            own text COLLATE "C",
            doc jsonb NOT NULL
        )""",
        # child_by_name; also the uniqueness of a name under its parent.
        """CREATE UNIQUE INDEX doc_pi_rn ON doc (pi, rn)""",
        # get_by_path: one resource per structured path.
        """CREATE UNIQUE INDEX doc_srn ON doc (srn)""",
        # children (all types), subtree deletion, count_children.
        """CREATE INDEX doc_pi_seq ON doc (pi, seq)""",
        # children of a type, edge_child (newest/oldest), count_children(ty).
        """CREATE INDEX doc_pi_ty_seq ON doc (pi, ty, seq)""",
        # lookup("ty", ...): every subscription at start.
        """CREATE INDEX doc_ty ON doc (ty)""",
        # expired / next_expiry.
        """CREATE INDEX doc_et ON doc (et, ri) WHERE et IS NOT NULL""",
        # lookup / count_by on the indexed attributes.
        """CREATE INDEX doc_aei ON doc (aei) WHERE aei IS NOT NULL""",
        """CREATE INDEX doc_csi ON doc (csi) WHERE csi IS NOT NULL""",
        """CREATE INDEX doc_own ON doc (own) WHERE own IS NOT NULL""",
        # The KV area: insertion order per namespace is ``seq``.
        """CREATE SEQUENCE kv_seq""",
        """CREATE TABLE kv (
            ns    text COLLATE "C" NOT NULL,
            key   text COLLATE "C" NOT NULL,
            seq   bigint NOT NULL,
            value jsonb,  -- SQL NULL: the JSON value null
            PRIMARY KEY (ns, key)
        )""",
        """CREATE INDEX kv_ns_seq ON kv (ns, seq)""",
    )),
    (2, (
        # One store operation as one function call, so a whole batch is one
        # ``executemany`` (one round trip, atomic) instead of BEGIN, a
        # statement per operation and COMMIT (cse.store.pg_store docstring).
        # k: 'p' Put, 'd' Delete (the subtree), 'k' KvPut, 'x' KvDelete.
        """CREATE FUNCTION cse_op(k text, p_ri text, p_pi text, p_rn text, p_ty integer, p_srn text,
                                 p_et text, p_aei text, p_csi text, p_own text, p_doc jsonb,
                                 p_ns text, p_key text, p_value jsonb) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            IF k = 'p' THEN
                INSERT INTO doc AS d (ri, pi, rn, ty, srn, et, aei, csi, own, doc, seq)
                VALUES (p_ri, p_pi, p_rn, p_ty, p_srn, p_et, p_aei, p_csi, p_own, p_doc, nextval('doc_seq'))
                ON CONFLICT (ri) DO UPDATE SET
                    pi = EXCLUDED.pi, rn = EXCLUDED.rn, ty = EXCLUDED.ty, srn = EXCLUDED.srn, et = EXCLUDED.et,
                    aei = EXCLUDED.aei, csi = EXCLUDED.csi, own = EXCLUDED.own, doc = EXCLUDED.doc,
                    seq = CASE WHEN d.pi = EXCLUDED.pi AND d.ty = EXCLUDED.ty THEN d.seq ELSE EXCLUDED.seq END;
            ELSIF k = 'd' THEN
                WITH RECURSIVE sub(ri) AS (
                    SELECT doc.ri FROM doc WHERE doc.ri = p_ri
                    UNION
                    SELECT c.ri FROM doc c JOIN sub ON c.pi = sub.ri
                )
                DELETE FROM doc WHERE doc.ri IN (SELECT sub.ri FROM sub);
            ELSIF k = 'k' THEN
                INSERT INTO kv (ns, key, value, seq) VALUES (p_ns, p_key, p_value, nextval('kv_seq'))
                ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value;
            ELSIF k = 'x' THEN
                DELETE FROM kv WHERE kv.ns = p_ns AND kv.key = p_key;
            ELSE
                RAISE EXCEPTION 'cse_op: unknown operation %', k;
            END IF;
        END
        $$""",
    )),
    (3, (
        # Several workers on one schema (cse.store.pg_coord): the worker
        # delivering notifications hears of every new outbox entry at the
        # commit that wrote it (one NOTIFY per transaction: equal payloads fold;
        # the payload is the schema, as the channel is the database's).
        """CREATE FUNCTION cse_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cse_outbox', TG_TABLE_SCHEMA);
            RETURN NULL;
        END
        $$""",
        """CREATE TRIGGER kv_outbox_notify AFTER INSERT ON kv FOR EACH ROW
        WHEN (NEW.ns = 'outbox') EXECUTE FUNCTION cse_outbox_notify()""",
    )),
)

#: How many change-log rows (version 4) are kept behind the newest: a worker
#: further behind than that loads every document again (cse.store.pg_shared).
CHANGE_LOG_KEEP = 20000

MIGRATIONS += (
    (4, (
        # The change log of several workers (cse.store.pg_shared): every
        # commit a worker makes appends one row, numbered by ``chg_head``.
        # Taking the number updates that one row, whose lock is held to the
        # commit, so numbers follow commit order and have no gaps (a
        # rolled-back commit rolls its number back): a worker that has
        # applied every row up to N and reads the rows after N misses none.
        """CREATE TABLE chg_head (one boolean PRIMARY KEY DEFAULT true CHECK (one), gen bigint NOT NULL)""",
        """INSERT INTO chg_head (gen) VALUES (0)""",
        """CREATE TABLE chg (gen bigint PRIMARY KEY, cid text COLLATE "C" NOT NULL, ops jsonb NOT NULL)""",
        # cse_op as in version 2, plus 'g': log the commit ``p_key`` whose
        # operations are ``p_doc``, prune the log every 1000 rows, and tell
        # the other workers (the payload: the schema and the committing
        # worker's tag, the part of ``p_key`` before its dot; one NOTIFY per
        # transaction: equal payloads fold).
        f"""CREATE OR REPLACE FUNCTION cse_op(k text, p_ri text, p_pi text, p_rn text, p_ty integer, p_srn text,
                                 p_et text, p_aei text, p_csi text, p_own text, p_doc jsonb,
                                 p_ns text, p_key text, p_value jsonb) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            g bigint;
        BEGIN
            IF k = 'p' THEN
                INSERT INTO doc AS d (ri, pi, rn, ty, srn, et, aei, csi, own, doc, seq)
                VALUES (p_ri, p_pi, p_rn, p_ty, p_srn, p_et, p_aei, p_csi, p_own, p_doc, nextval('doc_seq'))
                ON CONFLICT (ri) DO UPDATE SET
                    pi = EXCLUDED.pi, rn = EXCLUDED.rn, ty = EXCLUDED.ty, srn = EXCLUDED.srn, et = EXCLUDED.et,
                    aei = EXCLUDED.aei, csi = EXCLUDED.csi, own = EXCLUDED.own, doc = EXCLUDED.doc,
                    seq = CASE WHEN d.pi = EXCLUDED.pi AND d.ty = EXCLUDED.ty THEN d.seq ELSE EXCLUDED.seq END;
            ELSIF k = 'd' THEN
                WITH RECURSIVE sub(ri) AS (
                    SELECT doc.ri FROM doc WHERE doc.ri = p_ri
                    UNION
                    SELECT c.ri FROM doc c JOIN sub ON c.pi = sub.ri
                )
                DELETE FROM doc WHERE doc.ri IN (SELECT sub.ri FROM sub);
            ELSIF k = 'k' THEN
                INSERT INTO kv (ns, key, value, seq) VALUES (p_ns, p_key, p_value, nextval('kv_seq'))
                ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value;
            ELSIF k = 'x' THEN
                DELETE FROM kv WHERE kv.ns = p_ns AND kv.key = p_key;
            ELSIF k = 'g' THEN
                UPDATE chg_head SET gen = chg_head.gen + 1 RETURNING chg_head.gen INTO g;
                INSERT INTO chg (gen, cid, ops) VALUES (g, p_key, p_doc);
                IF g % 1000 = 0 THEN
                    DELETE FROM chg WHERE chg.gen <= g - {CHANGE_LOG_KEEP};
                END IF;
                PERFORM pg_notify('cse_chg', current_schema() || ' ' || split_part(p_key, '.', 1));
            ELSE
                RAISE EXCEPTION 'cse_op: unknown operation %', k;
            END IF;
        END
        $$""",
    )),
)

LATEST = MIGRATIONS[-1][0]
