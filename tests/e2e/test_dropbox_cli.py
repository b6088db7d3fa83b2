"""`crmhub dropbox`: the command a mail admin starts, refusing bad configuration in one line."""

from __future__ import annotations

import smtplib
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import CRMHUB, Cli, crmhub_env, free_port

MAIL = (
    b"From: Anna <anna@ourco.example>\r\nTo: Jana <j.ohlsen@elbe-logistik.de>\r\n"
    b"Subject: Angebot Lager Nord\r\nMessage-ID: <dropbox-e2e@ourco.example>\r\n"
    b"Date: Mon, 8 Jan 2024 09:00:00 +0100\r\n\r\nAnbei das Angebot.\r\n"
)


def test_dropbox_without_an_address_refuses_to_start(crmhub: Cli) -> None:
    result = crmhub("dropbox", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.startswith("crmhub: dropbox_addresses is empty")
    assert "Traceback" not in result.stderr


def test_dropbox_logs_a_bcc_copy_and_refuses_strangers(database_url: str, migrated: None) -> None:
    port = free_port()
    env = crmhub_env(database_url, CRMHUB_DROPBOX_ADDRESSES="log@crm.example")
    process = subprocess.Popen(
        [str(CRMHUB), "dropbox", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(
                        f"dropbox did not start: {process.stderr.read() if process.stderr else ''}"
                    )
                time.sleep(0.1)
        with client:
            assert client.sendmail("anna@ourco.example", ["log@crm.example"], MAIL) == {}
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("evil@outside.example", ["log@crm.example"], MAIL)
            assert refused.value.smtp_code == 550
    finally:
        process.terminate()
        process.communicate(timeout=10)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT direction, subject FROM interactions WHERE message_id = :m"),
            {"m": "<dropbox-e2e@ourco.example>"},
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("outbound", "Angebot Lager Nord")]
