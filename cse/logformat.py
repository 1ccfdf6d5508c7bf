"""``[log] format = "json"``: one JSON object per line, for log shippers (docs/configuration.md "[log]").

Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
``message`` (the text line, formatted); a request line also carries its
fields under ``request`` (method, target with query string, origin, rsc, ms,
rqi, dbg of an error); an exception its traceback under ``exc``. The stdlib
formatter is enough: json.dumps escapes whatever a client sent, so a line
stays one line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure"]


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__.get("request")
        if isinstance(fields, dict):
            out["request"] = fields
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Set up the root logger for ``python -m cse``: ``fmt`` is ``text`` or ``json``."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
