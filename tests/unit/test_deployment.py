"""The production set-up as written is one that works: docs/deployment.md, the Containerfile and
deploy/ configure crmhub only through settings that exist, run only command lines that crmhub
takes, wire the compose services in a working order, and the guide's backup and restore
commands, run for real on databases that crmhub wrote, give back a database that crmhub reads
with the same items. No container is started here; what needs one is checked by reading.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import Settings, load_settings
from hub.cli import parser
from storage.db import parse_url
from tests.conftest import PG_URL, empty_pg_database, private_pg_database
from tests.e2e.conftest import crmhub_env

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "deployment.md"
CONTAINERFILE = ROOT / "Containerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "nginx.conf"
ENV_EXAMPLE = DEPLOY / "env.example"
WRITTEN = (GUIDE, CONTAINERFILE, COMPOSE, NGINX, ENV_EXAMPLE)
DATA = ROOT / "tests" / "data"
CRMHUB = Path(sys.executable).parent / "crmhub"
# Read by config.settings.load_settings itself: the path of the TOML file, not an option in it.
NOT_AN_OPTION = {"CRMHUB_CONFIG"}
CRMHUB_SERVICES = ("migrate", "web1", "web2", "worker", "dropbox")
SALES = "sales@ourco.example"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(_read(COMPOSE))
    assert isinstance(loaded, dict), "compose.yaml is a mapping"
    return loaded


# Settings


@pytest.mark.parametrize("path", WRITTEN, ids=lambda p: p.name)
def test_every_crmhub_variable_named_is_a_setting(path: Path) -> None:
    named = set(re.findall(r"\bCRMHUB_[A-Z0-9_]*[A-Z0-9]", _read(path)))
    unknown = sorted(
        name
        for name in named - NOT_AN_OPTION
        if name.removeprefix("CRMHUB_").lower() not in Settings.model_fields
    )
    assert not unknown, f"{path.name} names variables that config.settings does not read"
    if path is not CONTAINERFILE:  # the image sets none: configuration comes from outside
        assert named, f"{path.name} names no CRMHUB_* variable"


def test_crmhub_config_names_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one CRMHUB_* variable that is not an option is the file of options."""
    _clear_crmhub_environment(monkeypatch)
    config = tmp_path / "crmhub.toml"
    config.write_text('default_region = "AT"\n', encoding="utf-8")
    monkeypatch.setenv("CRMHUB_CONFIG", str(config))
    assert load_settings().default_region == "AT"


def _clear_crmhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CRMHUB_"):
            monkeypatch.delenv(name)


def _example_environment() -> dict[str, str]:
    values = {}
    for line in _read(ENV_EXAMPLE).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"env.example: {line!r} is not NAME=value"
            values[name.strip()] = value.strip()
    return values


def _interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, as `docker compose` reads them."""

    def one(match: re.Match[str]) -> str:
        name, how, argument = match.group(1), match.group(2), match.group(3)
        found = variables.get(name, "")
        if how == ":-" and not found:
            return argument
        if how == ":?" and not found:
            raise AssertionError(f"compose.yaml requires {name}: {argument}")
        assert found or how, f"compose.yaml uses ${{{name}}}, which deploy/.env does not set"
        return found

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def test_the_example_environment_ships_no_secret_key() -> None:
    """Whatever is in the example ends up in someone's production."""
    example = _example_environment()
    assert example.get("CRMHUB_SECRET_KEY", "missing") == ""
    unknown = sorted(
        name
        for name in example
        if not name.startswith("CRMHUB_") and not re.search(rf"\$\{{{name}\b", _read(COMPOSE))
    )
    assert not unknown, f"env.example sets variables compose.yaml does not use: {unknown}"


@pytest.mark.parametrize("service", CRMHUB_SERVICES)
def test_each_crmhub_service_starts_with_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/.env made from the example (plus the key it leaves to you) gives every crmhub
    service settings that load, on PostgreSQL, trusting exactly the proxy."""
    compose = _compose()
    variables = {**_example_environment(), "CRMHUB_SECRET_KEY": "a-key-the-operator-generated"}
    environment = compose["services"][service]["environment"]
    _clear_crmhub_environment(monkeypatch)
    for name, value in environment.items():
        assert name.startswith("CRMHUB_"), f"{service}: {name} is not a crmhub setting"
        monkeypatch.setenv(name, _interpolate(str(value), variables))
    settings = load_settings()
    assert parse_url(settings.database_url).get_backend_name() == "postgresql"
    assert settings.secret_key == "a-key-the-operator-generated"
    proxy = compose["services"]["proxy"]["networks"]["crmhub"]["ipv4_address"]
    assert settings.trusted_proxies == [proxy]
    if service == "dropbox":
        assert settings.dropbox_addresses and settings.dropbox_networks


# Command lines


def _shell_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of one shell line, split at ;, &&, || and |."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    command: list[str] = []
    for token in lexer:
        if token and all(c in "();<>|&" for c in token):
            if command:
                yield command
            command = []
        else:
            command.append(token)
    if command:
        yield command


def _crmhub_arguments(words: list[str]) -> list[str] | None:
    """The arguments of crmhub in a simple command: after NAME=value assignments, or inside
    `docker compose exec|run ... SERVICE crmhub ...`; None for another program."""
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words = words[1:]
    if not words:
        return None
    if words[0] in ("docker", "podman") and "crmhub" in words:
        return words[words.index("crmhub") + 1 :]
    if words[0] == "crmhub" or words[0].endswith("/crmhub"):
        return words[1:]
    return None


def _written_command_lines(path: Path) -> list[list[str]]:
    """Every crmhub command of a text: in ```sh blocks and in `crmhub ...` code spans."""
    content = _read(path)
    found = []
    for block in re.findall(r"```sh\n(.*?)```", content, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for words in _shell_commands(line):
                arguments = _crmhub_arguments(words)
                if arguments is not None:
                    found.append(arguments)
    for span in re.findall(r"`(crmhub [^`]+)`", content):
        found.append(shlex.split(span)[1:])
    return found


def _compose_command_lines() -> list[list[str]]:
    found = []
    for service in _compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["crmhub"]:
            found.append(command[1:])
    return found


def _containerfile_command() -> list[str]:
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", _read(CONTAINERFILE), flags=re.M)
    assert cmd, "the Containerfile has a CMD in JSON form"
    words = json.loads(cmd.group(1))
    assert words[0] == "crmhub"
    return list(words[1:])


def _parsed(arguments: list[str]) -> Any:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"`crmhub {shlex.join(arguments)}` does not parse: {stderr.getvalue()}")


COMMAND_SOURCES = {
    "guide": lambda: _written_command_lines(GUIDE),
    "compose": _compose_command_lines,
    "Containerfile": lambda: [_containerfile_command()],
    "nginx.conf": lambda: _written_command_lines(NGINX),
}


@pytest.mark.parametrize("source", COMMAND_SOURCES.values(), ids=COMMAND_SOURCES.keys())
def test_every_crmhub_command_line_parses(source: Any) -> None:
    lines = source()
    assert lines, "crmhub commands are found there"
    for arguments in lines:
        _parsed(arguments)


def test_the_guide_runs_every_process_of_the_set_up() -> None:
    commands = {_parsed(arguments).run.__name__ for arguments in _written_command_lines(GUIDE)}
    wanted = {"cmd_serve", "cmd_worker", "cmd_dropbox", "cmd_db_upgrade"}
    assert wanted <= commands


def test_web_containers_leave_the_syncs_to_the_workers_and_listen_outside() -> None:
    serves = [_containerfile_command()] + [
        arguments for arguments in _compose_command_lines() if arguments[0] == "serve"
    ]
    assert len(serves) == 3, "the image's default command and the two web services"
    for arguments in serves:
        parsed = _parsed(arguments)
        assert parsed.no_scheduler and parsed.host == "0.0.0.0"
        assert parsed.port == 8000


# Compose file


def test_compose_has_every_service_of_the_set_up() -> None:
    services = _compose()["services"]
    assert {"postgres", *CRMHUB_SERVICES, "proxy"} <= set(services)
    by_command = {
        name: _parsed(service["command"][1:]).run.__name__
        for name, service in services.items()
        if name in CRMHUB_SERVICES
    }
    assert by_command == {
        "migrate": "cmd_db_upgrade",
        "web1": "cmd_serve",
        "web2": "cmd_serve",
        "worker": "cmd_worker",
        "dropbox": "cmd_dropbox",
    }
    assert services["migrate"]["restart"] == "no", "a one-shot service"


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    needs = service.get("depends_on", {})
    assert isinstance(needs, dict), "depends_on with conditions, not a plain list"
    return {name: need["condition"] for name, need in needs.items()}


def test_compose_starts_each_service_once_what_it_needs_is_ready() -> None:
    services = _compose()["services"]
    assert _conditions(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ("web1", "web2", "worker", "dropbox"):
        assert _conditions(services[name]) == {"migrate": "service_completed_successfully"}
    assert _conditions(services["proxy"]) == {
        "web1": "service_healthy",
        "web2": "service_healthy",
    }
    for name, service in services.items():
        for needed, condition in _conditions(service).items():
            assert needed in services, f"{name} depends on a service that is not there"
            if condition == "service_healthy":
                check = services[needed].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{needed}: no check"


def test_compose_checks_the_web_services_at_healthz() -> None:
    services = _compose()["services"]
    for name in ("web1", "web2"):
        check = " ".join(services[name]["healthcheck"]["test"])
        port = _parsed(services[name]["command"][1:]).port
        assert f"http://127.0.0.1:{port}/healthz" in check


def test_compose_builds_the_image_from_the_containerfile() -> None:
    services = _compose()["services"]
    for name in CRMHUB_SERVICES:
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]) == CONTAINERFILE


def test_compose_mounts_and_volumes_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                if source != "./tls":  # the operator's certificate: the guide says to add it
                    assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_nginx_passes_to_the_web_services_and_trusts_what_crmhub_trusts() -> None:
    compose = _compose()
    services = compose["services"]
    conf = _read(NGINX)
    upstream = re.search(r"upstream crmhub \{(.*?)\}", conf, flags=re.S)
    assert upstream
    servers = re.findall(r"^\s*server\s+(\S+?):(\d+)", upstream.group(1), flags=re.M)
    web = {(name, str(_parsed(services[name]["command"][1:]).port)) for name in ("web1", "web2")}
    assert set(servers) == web
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    for header in ("Host $http_host", "X-Forwarded-Proto $scheme", "X-Forwarded-For"):
        assert f"proxy_set_header {header}" in conf
    subnet = compose["networks"]["crmhub"]["ipam"]["config"][0]["subnet"]
    proxy = services["proxy"]["networks"]["crmhub"]["ipv4_address"]
    assert ipaddress.ip_address(proxy) in ipaddress.ip_network(subnet)


def test_nginx_takes_every_body_crmhub_takes() -> None:
    size = re.search(r"client_max_body_size\s+(\d+)([kmg]?);", _read(NGINX))
    assert size
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[size.group(2)]
    assert int(size.group(1)) * factor >= Settings.model_fields["max_upload_bytes"].default


# Containerfile


def _instructions() -> list[tuple[str, str]]:
    content = _read(CONTAINERFILE).replace("\\\n", " ")
    found = []
    for line in content.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def test_the_image_is_slim_python_run_by_an_unprivileged_user() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a user of its own"
    after_user = [k for k, _ in instructions[[k for k, _ in instructions].index("USER") :]]
    assert "RUN" not in after_user, "nothing runs as root after the switch"
    assert ("EXPOSE", "8000") in instructions
    health = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "http://127.0.0.1:8000/healthz" in health[0]


def test_the_image_installs_the_package_without_test_extras() -> None:
    runs = " ".join(rest for keyword, rest in _instructions() if keyword == "RUN")
    assert re.search(r"\bpip install \.(\s|$)", runs), "pip install ."
    assert "[test]" not in runs and "-e " not in runs


def test_the_image_copies_everything_the_package_is_built_from() -> None:
    """pip install . needs pyproject.toml, the readme it names and every package it finds."""
    project = tomllib.loads(_read(ROOT / "pyproject.toml"))
    needed = {"pyproject.toml", project["project"]["readme"]}
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed |= {p.name for p in ROOT.iterdir() if p.is_dir() and _included(p.name, patterns)}
    copied = set()
    for keyword, rest in _instructions():
        if keyword == "COPY":
            sources = rest.split()[:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            copied |= {source.rstrip("/") for source in sources}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"


def _included(name: str, patterns: list[str]) -> bool:
    return any(re.fullmatch(p.replace("*", ".*"), name) for p in patterns)


# Backup and restore, run for real


def _block(marker: str) -> str:
    """The guide's shell block whose first line is `marker`."""
    blocks = re.findall(r"```sh\n(.*?)```", _read(GUIDE), flags=re.S)
    found = [block for block in blocks if block.splitlines()[0] == marker]
    assert len(found) == 1, f"the guide has one block starting with {marker!r}"
    return found[0]


def _run_block(marker: str, variables: Mapping[str, Path | str], cwd: Path) -> str:
    script = "set -eu\n" + _block(marker)
    env = {**os.environ, **{name: str(value) for name, value in variables.items()}}
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{marker} failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


def _environment(database_url: str, **extra: str) -> dict[str, str]:
    """The operator's environment without a configured key unless `extra` names one: on
    SQLite crmhub then generates secret.key, which a backup must carry."""
    env = crmhub_env(database_url, **extra)
    if "CRMHUB_SECRET_KEY" not in extra:
        del env["CRMHUB_SECRET_KEY"]
    return env


def _crmhub(
    env: Mapping[str, str], cwd: Path, *args: str, status: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(CRMHUB), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == status, (
        f"crmhub {shlex.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill(env: Mapping[str, str], cwd: Path) -> str:
    """A user, a mailbox file with its directory, and a connector with a stored secret;
    returns the user's API token."""
    _crmhub(env, cwd, "users", "add", SALES, "--role", "sales")
    _crmhub(env, cwd, "directory", "import", str(DATA / "directory.csv"))
    mail = ("--set", f"path={DATA / 'contract.mbox'}", "--set", f"owner={SALES}")
    _crmhub(env, cwd, "connectors", "add", "mbox", "mail", *mail)
    vault = ["host=127.0.0.1", f"port={_closed_port()}", f"username={SALES}", "tls=none"]
    _crmhub(
        {**env, "VAULT_PASSWORD": "s3cret"},
        cwd,
        "connectors",
        "add",
        "imap",
        "vault",
        *(word for setting in vault for word in ("--set", setting)),
        "--secret",
        "password=VAULT_PASSWORD",
    )
    return _crmhub(env, cwd, "tokens", "create", SALES).stdout.strip()


@contextlib.contextmanager
def _serving(env: Mapping[str, str], cwd: Path) -> Iterator[str]:
    """`crmhub serve` on a free port, as an operator starts it; stopped by its pid after."""
    port = _closed_port()
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CRMHUB), "serve", "--port", str(port), "--no-scheduler", "--workers", "1"],
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"crmhub serve exited with {process.returncode}:\n{_read(log)}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"crmhub serve did not answer within 60 s:\n{_read(log)}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _items(url: str, token: str) -> list[dict[str, Any]]:
    """Every interaction the user may see, through the API, page by page."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        answer = httpx.get(
            f"{url}/api/interactions",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        cursor = page["next_cursor"] or ""
        if not cursor:
            return items


def _reads_like_the_original(env: Mapping[str, str], cwd: Path, token: str, items: Any) -> None:
    """The restored database serves the same items, knows where each sync stopped, and opens
    the stored connector secrets."""
    with _serving(env, cwd) as url:
        assert _items(url, token) == items
    report = json.loads(_crmhub(env, cwd, "sync", "mail", "--json").stdout)
    (mail,) = report["connectors"]
    assert (mail["fetched"], mail["new"], mail["errors"]) == (0, 0, 0), "resumed at its cursor"
    failed = _crmhub(env, cwd, "connectors", "test", "vault", status=2).stderr
    assert "cannot connect to 127.0.0.1" in failed and "cannot be decrypted" not in failed


def _owner_only(*paths: Path) -> None:
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o077, f"{path} is readable by others ({mode:o})"


def test_sqlite_backup_of_a_live_database_restores_as_documented(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the guide's SQLite backup uses the sqlite3 shell: apt-get install sqlite3")
    live, backups, restored = tmp_path / "live", tmp_path / "backups", tmp_path / "restored"
    backups.mkdir()
    # No CRMHUB_SECRET_KEY: crmhub generates secret.key beside the database, part of a backup.
    env = _environment(f"sqlite:///{live / 'crmhub.db'}")
    token = _fill(env, tmp_path)
    with _serving(env, tmp_path) as url:
        assert _items(url, token) == []  # the server now holds the database open
        _crmhub(env, tmp_path, "sync", "mail")
        assert (live / "crmhub.db-wal").stat().st_size > 0, "the new items are in the WAL"
        shutil.copy(live / "crmhub.db", tmp_path / "plain-copy.db")
        checked = _run_block(
            "# backup: SQLite", {"DATA_DIR": live, "BACKUP_DIR": backups}, tmp_path
        )
        items = _items(url, token)
    assert checked.split() == ["ok"], "the guide checks the copy"
    assert items, "the sync stored the mailbox"
    assert _stored_items(tmp_path / "plain-copy.db") < len(items), "a plain cp misses the WAL"
    _owner_only(backups / "crmhub.db", backups / "secret.key")

    _run_block("# restore: SQLite", {"DATA_DIR": restored, "BACKUP_DIR": backups}, tmp_path)
    _owner_only(restored / "crmhub.db", restored / "secret.key")
    _reads_like_the_original(
        _environment(f"sqlite:///{restored / 'crmhub.db'}"), tmp_path, token, items
    )


def _stored_items(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT count(*) FROM interactions").fetchone()[0])


def _major(version: str) -> int:
    found = re.search(r"(\d+)(?:\.\d+)?", version)
    assert found, version
    return int(found.group(1))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _empty_database() -> contextlib.AbstractContextManager[str]:
    return empty_pg_database("crmhub_restore")


def _server_major() -> int:
    engine = create_engine(make_url(PG_URL))
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    finally:
        engine.dispose()


@pytest.mark.skipif(
    not PG_URL,
    reason="PostgreSQL only: set CRMHUB_TEST_DATABASE_URL=postgresql+psycopg://USER@HOST/DB",
)
def test_postgresql_dump_restores_as_documented(tmp_path: Path) -> None:
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: apt-get install postgresql-client")
    tools = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True)
    if _major(tools.stdout.split(")", 1)[-1]) < _server_major():
        pytest.skip(f"{tools.stdout.strip()} cannot dump a PostgreSQL {_server_major()} server")
    backups = tmp_path / "backups"
    backups.mkdir()
    key = {"CRMHUB_SECRET_KEY": "deployment-test-key-0123456789"}
    with private_pg_database("crmhub_dump") as source:
        env = _environment(source, **key)
        token = _fill(env, tmp_path)
        _crmhub(env, tmp_path, "sync", "mail")
        _run_block(
            "# backup: PostgreSQL", {"PG_URL": _libpq(source), "BACKUP_DIR": backups}, tmp_path
        )
        with _serving(env, tmp_path) as url:
            items = _items(url, token)
    assert items, "the sync stored the mailbox"
    _owner_only(backups / "crmhub.dump")
    with _empty_database() as target:
        _run_block(
            "# restore: PostgreSQL", {"PG_URL": _libpq(target), "BACKUP_DIR": backups}, tmp_path
        )
        restored = _environment(target, **key)
        _crmhub(restored, tmp_path, "db", "upgrade")
        _reads_like_the_original(restored, tmp_path, token, items)
