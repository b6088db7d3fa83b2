"""`retention_days`: per channel, from the TOML table or CRMHUB_RETENTION_DAYS, with errors that
say what to type."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


def test_default_keeps_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMHUB_CONFIG", raising=False)
    monkeypatch.delenv("CRMHUB_RETENTION_DAYS", raising=False)
    assert load_settings().retention_days == {}


def test_file_table_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[retention_days]\nemail = 730\nsms = 30\n")
    monkeypatch.setenv("CRMHUB_CONFIG", str(path))
    monkeypatch.delenv("CRMHUB_RETENTION_DAYS", raising=False)
    assert load_settings().retention_days == {"email": 730, "sms": 30}
    monkeypatch.setenv("CRMHUB_RETENTION_DAYS", "email=365, call=90")
    assert load_settings().retention_days == {"email": 365, "call": 90}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mail=30", "'mail' is not a channel; use email, call, sms, im, meeting, fax, note"),
        ("call=0", "call='0': expected a whole number of days above 0"),
        ("call=-5", "call='-5': expected a whole number"),
        ("call=ninety", "call='ninety'"),
        ("call", "expected channel=days, e.g. email=730,call=90"),
    ],
)
def test_bad_values_name_the_option_and_what_to_type(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMHUB_CONFIG", raising=False)
    monkeypatch.setenv("CRMHUB_RETENTION_DAYS", value)
    with pytest.raises(ConfigError, match="retention_days") as caught:
        load_settings()
    assert message in str(caught.value)


def test_a_bad_table_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[retention_days]\ncall = true\n")
    monkeypatch.setenv("CRMHUB_CONFIG", str(path))
    monkeypatch.delenv("CRMHUB_RETENTION_DAYS", raising=False)
    with pytest.raises(ConfigError, match=r"retention_days: .*call=True") as caught:
        load_settings()
    assert str(path) in str(caught.value)
