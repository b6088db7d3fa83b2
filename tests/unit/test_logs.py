"""Log lines: request ids (the client's when sane, else a fresh one), the JSON formatter (one
parseable, ASCII object per record) and the text formatter with the id beside the logger."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import ConfigError, load_settings
from hub.logs import (
    JsonFormatter,
    TextFormatter,
    bind_request_id,
    current_request_id,
    request_id_for,
    unbind_request_id,
)

FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("given_id", ["abc", "a" * 64, "Req-1.2_x", "0"])
def test_a_sane_client_id_is_kept(given_id: str) -> None:
    assert request_id_for(given_id) == given_id


@pytest.mark.parametrize(
    "given_id",
    [None, "", "a" * 65, "two words", "line\nbreak", 'quote"d', "ümlaut", "semi;colon", "a/b"],
)
def test_anything_else_gets_a_fresh_id(given_id: str | None) -> None:
    made = request_id_for(given_id)
    assert FRESH.fullmatch(made), made
    assert made != request_id_for(given_id), "each request its own"


@given(st.text(max_size=80))
def test_an_id_is_always_short_and_plain(text: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", request_id_for(text))


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    logger = logging.getLogger("crmhub.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, sink, handler
    logger.removeHandler(handler)
    logger.propagate = True


def test_json_lines_carry_time_level_logger_message_and_the_request_id(
    logged: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, sink, handler = logged
    handler.setFormatter(JsonFormatter())
    logger.warning("before %s", "any request")
    token = bind_request_id("abc")
    try:
        logger.warning("refused %r", "evil\x1b[2J\u202eexe.txt\nforged line")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        unbind_request_id(token)
    logger.info("after")
    lines = sink.getvalue().splitlines()
    assert len(lines) == 4, lines
    docs = [json.loads(line) for line in lines]
    assert all(line.isascii() for line in lines)
    assert [d["level"] for d in docs] == ["WARNING", "WARNING", "ERROR", "INFO"]
    assert {d["logger"] for d in docs} == {"crmhub.test_logs"}
    assert [d.get("request_id") for d in docs] == [None, "abc", "abc", None]
    assert docs[0]["message"] == "before any request"
    assert docs[1]["message"] == "refused 'evil\\x1b[2J\\u202eexe.txt\\nforged line'"
    assert "ValueError: boom" in docs[2]["exception"]
    assert "Traceback" in docs[2]["exception"]
    at = datetime.fromisoformat(docs[0]["time"])
    assert docs[0]["time"].endswith("Z")
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_text_lines_keep_their_format_and_show_the_id_during_a_request(
    logged: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, sink, handler = logged
    handler.setFormatter(TextFormatter())
    logger.warning("outside")
    token = bind_request_id("r-42")
    try:
        logger.warning("inside \x1b[31mred")
    finally:
        unbind_request_id(token)
    assert current_request_id() is None
    assert sink.getvalue().splitlines() == [
        "WARNING crmhub.test_logs: outside",
        "WARNING crmhub.test_logs [r-42]: inside \\x1b[31mred",
    ]


def test_log_format_is_text_by_default_and_a_bad_one_names_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRMHUB_CONFIG", raising=False)
    monkeypatch.delenv("CRMHUB_LOG_FORMAT", raising=False)
    assert load_settings().log_format == "text"
    monkeypatch.setenv("CRMHUB_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("CRMHUB_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match=r"log_format: .*'text' or 'json'"):
        load_settings()
