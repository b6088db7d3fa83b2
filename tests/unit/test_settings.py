"""Configuration: the documented example file, layering and error messages that name the source."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config.settings import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).parents[2] / "config" / "crmhub.example.toml"


def test_example_documents_every_option_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(tomllib.loads(EXAMPLE.read_text())) == set(Settings.model_fields)
    monkeypatch.setenv("CRMHUB_CONFIG", str(EXAMPLE))
    assert load_settings().internal_domains == ["ourco.example"]


def test_environment_wins_over_file_and_lists_are_comma_separated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('default_region = "AT"\nsync_interval = 60\n')
    monkeypatch.setenv("CRMHUB_CONFIG", str(path))
    monkeypatch.setenv("CRMHUB_SYNC_INTERVAL", "30")
    monkeypatch.setenv("CRMHUB_INTERNAL_DOMAINS", "A.example, b.example")
    settings = load_settings()
    assert (settings.default_region, settings.sync_interval) == ("AT", 30)
    assert settings.internal_domains == ["a.example", "b.example"]


@pytest.mark.parametrize(
    ("file_text", "env", "message"),
    [
        ("default_region = 'Germany'\n", {}, "default_region: .*two-letter"),
        ("sync_interval = [\n", {}, "not valid TOML"),
        ("", {"CRMHUB_SYNC_INTERVAL": "often"}, "sync_interval"),
        ("colour = 'blue'\n", {}, "colour"),
        ("timezone = 'Mars/Olympus'\n", {}, "timezone: .*not a time zone name"),
    ],
)
def test_bad_configuration_names_source_and_option(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_text: str,
    env: dict[str, str],
    message: str,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(file_text)
    monkeypatch.setenv("CRMHUB_CONFIG", str(path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings()
    assert str(path) in str(caught.value)


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRMHUB_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings()
