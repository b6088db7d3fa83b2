"""The one settings schema: defaults, then a TOML file named by CRMHUB_CONFIG, then CRMHUB_* env.

Every option carries its help text; `crmhub.example.toml` documents the same options. Settings are
built once at start-up and passed explicitly; nothing reads the environment behind their back.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.model import Channel


class ConfigError(Exception):
    """Bad configuration; the message names the source and the option."""


CHANNELS = tuple(channel.value for channel in Channel)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMHUB_", extra="forbid")

    database_url: str = Field(
        "sqlite:///./crmhub.db",
        description="SQLAlchemy URL: sqlite:///PATH (default) or postgresql+psycopg://...",
    )
    internal_domains: list[str] = Field(
        default_factory=list,
        description="Our own company's mail domains (comma-separated); their addresses are staff.",
    )
    default_region: str = Field(
        "DE", description="ISO country for phone numbers written without +, e.g. DE."
    )
    timezone: str = Field(
        "Europe/Berlin", description="Time zone of local times in sources that give none (CDR)."
    )
    free_mail_domains: list[str] = Field(
        default_factory=list, description="Extra free-mail domains that never match by domain."
    )
    secret_key: str = Field(
        "",
        description="Key for session cookies and stored connector secrets; "
        "generated into <data dir>/secret.key when empty.",
    )
    sync_interval: int = Field(
        0,
        ge=0,
        description="Seconds between scheduled syncs of every connector, in place of each "
        "kind's own interval (imap 300 plus IDLE, m365 and caldav 120, others 300); 0 (the "
        "default): each kind's own.",
    )
    worker_concurrency: int = Field(
        10,
        ge=1,
        description="Syncs one `crmhub worker` runs at once on PostgreSQL.",
    )
    worker_watchers: int = Field(
        100,
        ge=0,
        description="IMAP IDLE watchers one `crmhub worker` holds on PostgreSQL, beside its "
        "syncs; mailboxes beyond all workers' watchers are synced by their sweep alone.",
    )
    calendar_window_days: int = Field(
        365, description="Recurring events are expanded this many days around today."
    )
    max_header_bytes: int = Field(
        64_000, description="Headers larger than this are truncated before parsing."
    )
    max_message_bytes: int = Field(
        25_000_000, description="Larger messages are stored without attachment bodies."
    )
    dropbox_addresses: list[str] = Field(
        default_factory=list,
        description="Addresses the SMTP dropbox accepts (staff BCC or forward mail there to log "
        "it), e.g. log@crm.example; `crmhub dropbox` refuses to start without one.",
    )
    dropbox_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Networks (CIDR) whose clients may hand mail to the dropbox without SMTP "
        "AUTH; others must log in as a crmhub user.",
    )
    dropbox_tls_cert: str = Field(
        "", description="PEM certificate (chain) for STARTTLS on the dropbox; empty: no TLS."
    )
    dropbox_tls_key: str = Field("", description="PEM private key for `dropbox_tls_cert`.")
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Addresses of reverse proxies whose X-Forwarded-Proto and X-Forwarded-For "
        "crmhub believes (HTTPS detection for the Secure cookie, client addresses for the "
        "login throttle); * trusts any, which is only safe behind a proxy that overwrites them.",
    )
    max_upload_bytes: int = Field(
        10_000_000, description="Largest form or upload the web view accepts, in bytes."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text for people (text) or one JSON object per line for a log "
        "collector (json: time, level, logger, message, request_id during a request).",
    )
    retention_days: dict[str, int] = Field(
        default_factory=dict,
        description="Days items of a channel are kept before they are deleted, per channel "
        "(email, call, sms, meeting, fax, note), e.g. email=730,call=90; a channel not named "
        "is kept.",
    )

    @field_validator(
        "internal_domains",
        "free_mail_domains",
        "dropbox_addresses",
        "dropbox_networks",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        """Checked here: every page shows times in it, a bad name must stop the start."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"{value!r} is not a time zone name such as Europe/Berlin") from e
        return value

    @field_validator("dropbox_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as e:
                raise ValueError(f"{network!r} is not a network such as 10.0.0.0/8") from e
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> dict[str, int]:
        """`email=730,call=90` (the environment) or a table (the file): channel -> days > 0."""
        if isinstance(value, str):
            pairs = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                channel, sep, days = part.partition("=")
                if not sep:
                    raise ValueError(f"{part!r}: expected channel=days, e.g. email=730,call=90")
                pairs[channel.strip().lower()] = days.strip()
            value = pairs
        if not isinstance(value, Mapping):
            raise ValueError("expected channel = days pairs, e.g. email=730,call=90")
        checked = {}
        for channel, days in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"{channel!r} is not a channel; use {', '.join(CHANNELS)}")
            text = str(days)
            if isinstance(days, bool) or not text.isdigit() or int(text) < 1:
                raise ValueError(f"{channel}={days!r}: expected a whole number of days above 0")
            checked[channel] = int(text)
        return checked

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"{value!r} is not a two-letter ISO country code such as DE")
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _PlainEnv(settings_cls))

    @property
    def data_dir(self) -> Path:
        """Where the embedded database lives; secrets and blobs default to beside it."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///")).resolve().parent
        return Path.cwd()


class _PlainEnv(PydanticBaseSettingsSource):
    """Reads CRMHUB_* as plain strings so that lists can be comma-separated, not JSON."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return os.environ.get(f"CRMHUB_{field_name.upper()}"), field_name, False

    def __call__(self) -> dict[str, Any]:
        names = self.settings_cls.model_fields
        return {
            name: os.environ[f"CRMHUB_{name.upper()}"]
            for name in names
            if f"CRMHUB_{name.upper()}" in os.environ
        }


def load_settings(**overrides: Any) -> Settings:
    """Layer defaults, the TOML file named by CRMHUB_CONFIG, the environment and overrides."""
    values: dict[str, Any] = {}
    source = "environment"
    path = os.environ.get("CRMHUB_CONFIG")
    if path:
        source = f"{path} and environment"
        try:
            values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as e:
            raise ConfigError(f"CRMHUB_CONFIG={path}: cannot read the file ({e.strerror})") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"CRMHUB_CONFIG={path}: not valid TOML ({e})") from e
    env = _PlainEnv(Settings)()
    values.update(env)
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"bad configuration in {source}: {problems}") from e
