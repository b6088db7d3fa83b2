"""How crmhub's processes log: text for people or one JSON object per line for a log collector
(the `log_format` setting), with the id of the request being answered on every line logged
while answering it.

The id lives in a context variable: a request is answered in a task of its own, and the work it
hands to threads (`asyncio.to_thread`) copies the context, so every line logged on its behalf
carries the id without being passed it. hub.web.observability sets it for each request.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from hub.terminal import PrintableFormatter

# What a client or a proxy may name its request: short, and nothing a log reader or a header
# could be confused by (no spaces, quotes, control characters, line breaks).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
TEXT_FORMAT = "%(levelname)s %(name)s%(request)s: %(message)s"

_request_id: ContextVar[str | None] = ContextVar("crmhub_request_id", default=None)


def request_id_for(given: str | None) -> str:
    """The id a request is logged under: the client's own when it is sane, else a new one."""
    if given is not None and SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def bind_request_id(value: str) -> Token[str | None]:
    return _request_id.set(value)


def unbind_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()


class TextFormatter(PrintableFormatter):
    """The text log as before (`LEVEL logger: message`, made printable), with the request's id
    after the logger's name when there is one: `WARNING hub.web.refusals [4f2a...]: ...`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        found = current_request_id()
        record.request = f" [{found}]" if found else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line. ASCII only: a control character, a bidi override or a line
    break quoted from a source is escaped, so a line is always one record and reads as it is."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        found = current_request_id()
        if found:
            doc["request_id"] = found
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=True, default=str)


def configure_logging(log_format: str, *, verbose: bool = False) -> None:
    """The root logger's one handler, on stderr. Called once at the start of a command."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
