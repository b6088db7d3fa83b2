"""A real Dovecot IMAP server as a child process, for the integration tier.

Fakes of IMAP drift from real servers exactly where connectors break: TLS, modified UTF-7 names,
UIDVALIDITY changes, expunges under an open session. So the tests run Dovecot itself, with its own
config, TLS certificate, ports, logs and mail store in one throw-away directory; nothing touches
the machine's Dovecot set-up.

Written for the Dovecot 2.3 config syntax (2.4 renamed most settings); `start_dovecot` refuses
other versions with a clear message instead of failing on an unreadable config later.

Mail lives in Maildir++ homes under ``home/g<generation>/<user>``. `Dovecot.reset` starts a new
generation, so each test sees fresh users and mailboxes while one server serves the whole
session. Setup helpers go through ``doveadm`` or write Maildir files directly, so tests do not
depend on the IMAP code they are testing.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import imaplib
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

INSTALL_HINT = "Dovecot is required for the integration tests: apt-get install dovecot-imapd"
HOST = "127.0.0.1"
# Dovecot counts a connection whose remote and local IPs are equal as secure and then allows
# plaintext logins regardless of settings, so a server that must refuse them listens here.
STRICT_HOST = "127.0.0.2"
START_TIMEOUT = 10.0
IMAP_TIMEOUT = 10.0
# Mail is owned by an unprivileged uid: Dovecot refuses root and its own internal user.
MAIL_UID = MAIL_GID = 65534


class DovecotError(RuntimeError):
    """Dovecot could not be started, or a doveadm command failed; the message carries stderr."""


@dataclass(frozen=True)
class MailUser:
    """A login on the test server."""

    name: str
    password: str


def find_dovecot() -> tuple[str, str]:
    """Return the paths of ``dovecot`` and ``doveadm``; /usr/sbin is often not on PATH."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    dovecot, doveadm = shutil.which("dovecot", path=search), shutil.which("doveadm", path=search)
    if dovecot is None or doveadm is None:
        raise DovecotError(INSTALL_HINT)
    return dovecot, doveadm


def encode_mutf7(name: str) -> str:
    """Encode a mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as sent on the wire."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",").decode() + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string; imaplib sends arguments verbatim."""
    encoded = encode_mutf7(name).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def _uid_set(uids: str | Iterable[int]) -> str:
    return uids if isinstance(uids, str) else ",".join(str(uid) for uid in uids)


def _free_ports(host: str, count: int) -> list[int]:
    """Ports the kernel just handed out; held together so they differ, then released for Dovecot."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def write_self_signed_cert(directory: Path) -> None:
    """Write ``cert.pem`` and ``key.pem`` for CN=localhost, SAN localhost, HOST and STRICT_HOST.

    An EC key is generated in milliseconds where RSA takes a noticeable part of start-up.
    """
    directory.mkdir(mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    ips = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in (HOST, STRICT_HOST)]
    san = [x509.DNSName("localhost"), *ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(directory / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(key_pem)


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM Dovecot if pytest dies, so no server outlives a killed run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Dovecot:
    """A running Dovecot with TLS on both listeners and helpers to arrange mailbox state.

    ``imap_port`` offers STARTTLS, ``imaps_port`` is implicit TLS; clients must trust
    ``cert_path`` (see `ssl_context`) and connect to ``host``. With ``allow_plaintext=False``
    Dovecot refuses LOGIN and AUTHENTICATE PLAIN before TLS, and listens on STRICT_HOST so that
    loopback does not count as secure. Users exist only in the current generation (see `reset`).

    With ``oauth2_url`` set, Dovecot also offers AUTHENTICATE XOAUTH2 and OAUTHBEARER and checks
    each bearer token by POSTing ``token=<token>`` to that RFC 7662 introspection endpoint, which
    must answer with JSON like ``{"active": true, "username": "<login>"}``; the username has to
    match the one the client sent, and the user must exist (`add_user`) for its mail home.
    Passwords keep working through the passwd-file passdb.
    """

    def __init__(self, root: Path, *, allow_plaintext: bool, oauth2_url: str | None = None) -> None:
        self.root = root
        self.allow_plaintext = allow_plaintext
        self.oauth2_url = oauth2_url
        self.host = HOST if allow_plaintext else STRICT_HOST
        self.imap_port = 0
        self.imaps_port = 0
        self.conf_path = root / "dovecot.conf"
        self.oauth2_conf_path = root / "dovecot-oauth2.conf.ext"
        self.cert_path = root / "tls" / "cert.pem"
        self.users_dir = root / "users"
        self._dovecot, self._doveadm = find_dovecot()
        self._process: subprocess.Popen[bytes] | None = None
        self._generation = 0
        self._written: dict[str, str] = {}
        self._hashes: dict[tuple[str, str], str] = {}
        self._stamp = 0

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (for localhost and its IPs)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    # Users and generations
    #
    # Dovecot's passwd-file driver stats a file at most once per second and serves its cached
    # copy in between, so a line rewritten in the same second as a login can go unseen. Each user
    # therefore has a file of their own whose line stays the same across generations: the home
    # goes through the ``home/current`` symlink, and hashes are reused. Only a changed password
    # costs a wait for the next second.

    @property
    def home_root(self) -> Path:
        """The real directory holding this generation's homes."""
        return self.root / "home" / f"g{self._generation}"

    def reset(self) -> None:
        """Remove all users and point homes at a new, empty store; open sessions are kicked first
        so no process of the old generation writes into the new one."""
        if self._process is not None:
            self.kick("*")
            self._wait_no_sessions()
        for path in self.users_dir.glob("*"):
            path.unlink()
        self._generation += 1
        self._make_owned_dir(self.home_root)
        link = self.root / "home" / "current.tmp"
        link.symlink_to(self.home_root.name)
        os.replace(link, self.root / "home" / "current")

    def _wait_no_sessions(self) -> None:
        deadline = time.monotonic() + 5
        while self.doveadm("who", "-1").splitlines()[1:]:
            if time.monotonic() > deadline:
                raise DovecotError(f"sessions survived doveadm kick:\n{self.doveadm('who')}")
            time.sleep(0.01)

    def add_user(self, name: str, password: str | None = None, scheme: str = "PLAIN") -> MailUser:
        """Create a login with an empty mailbox; ``scheme`` is any of ``doveadm pw -l``
        (PLAIN, SHA512-CRYPT, ...). The default password is derived from the name."""
        password = f"pw-{name.partition('@')[0]}" if password is None else password
        if not name or name.startswith(".") or any(c in name for c in ":/\n"):
            raise ValueError(f"unusable user name {name!r}")
        if any(c in password for c in ":\n"):
            raise ValueError(f"password for {name} must not contain ':' or newlines")
        key = (scheme.upper(), password)
        if key not in self._hashes:
            self._hashes[key] = (
                f"{{PLAIN}}{password}"
                if key[0] == "PLAIN"
                else self._run(self._doveadm, "pw", "-s", scheme, "-p", password).strip()
            )
        self._make_owned_dir(self.home_root / name)
        home = self.root / "home" / "current" / name
        line = f"{name}:{self._hashes[key]}:{MAIL_UID}:{MAIL_GID}::{home}::\n"
        self._write_user_file(name, line)
        if self._written.setdefault(name, line) != line:
            self._written[name] = line
            time.sleep(1 - time.time() % 1)
        return MailUser(name, password)

    def _write_user_file(self, name: str, line: str) -> None:
        """Write atomically, readable by the auth process (group dovecot), with an mtime never
        used before, since Dovecot compares whole-second mtimes and sizes to spot changes."""
        tmp = self.users_dir / f".{name}.tmp"
        tmp.write_text(line, encoding="utf-8")
        os.chmod(tmp, 0o640)
        shutil.chown(tmp, group="dovecot")
        self._stamp = max(int(time.time()), self._stamp + 1)
        os.utime(tmp, (self._stamp, self._stamp))
        os.replace(tmp, self.users_dir / name)

    @staticmethod
    def _make_owned_dir(path: Path) -> None:
        """mkdir -p, handing every new level to the mail uid so Dovecot can write there."""
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for level in reversed(missing):
            level.mkdir()
            os.chown(level, MAIL_UID, MAIL_GID)

    # Mailbox state

    def imap(self, user: MailUser) -> imaplib.IMAP4_SSL:
        """A logged-in imaplib session over implicit TLS; the caller logs out."""
        conn = imaplib.IMAP4_SSL(
            self.host, self.imaps_port, ssl_context=self.ssl_context(), timeout=IMAP_TIMEOUT
        )
        try:
            conn.login(user.name, user.password)
        except BaseException:
            conn.shutdown()
            raise
        return conn

    def append(
        self,
        user: MailUser,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int:
        """APPEND one message over IMAP and return its UID (from APPENDUID)."""
        conn = self.imap(user)
        try:
            flag_list = f"({' '.join(flags)})" if flags else None
            internal = imaplib.Time2Internaldate(date) if date is not None else None
            typ, data = conn.append(quote_mailbox(folder), flag_list, internal, raw)
        finally:
            conn.logout()
        text = (data[0] or b"").decode(errors="replace")
        found = re.search(r"APPENDUID \d+ (\d+)", text)
        if typ != "OK" or found is None:
            raise DovecotError(f"APPEND to {folder!r} for {user.name} failed: {typ} {text}")
        return int(found.group(1))

    def fill_maildir(self, user: MailUser, folder: str, messages: Iterable[bytes]) -> int:
        """Write messages straight into the Maildir and have Dovecot index them; returns count.

        5,000 messages take well under a second this way (on tmpfs), where APPEND takes
        minutes. UIDs follow the order of ``messages``; all arrive unseen.
        """
        before = self.message_count(user, folder, create=True)
        cur = Path(self.doveadm("mailbox", "path", "-u", user.name, folder).strip()) / "cur"
        stamp, pid, count = int(time.time()), os.getpid(), 0
        for count, raw in enumerate(messages, start=1):
            path = cur / f"{stamp}.M{count}P{pid}.crmhub,S={len(raw)}:2,"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, raw)
                os.fchown(fd, MAIL_UID, MAIL_GID)
            finally:
                os.close(fd)
        self.doveadm("force-resync", "-u", user.name, folder)
        after = self.message_count(user, folder)
        if after != before + count:
            raise DovecotError(
                f"{folder!r} of {user.name} has {after} messages after adding {count} to {before}"
            )
        return count

    def message_count(self, user: MailUser, folder: str, *, create: bool = False) -> int:
        """MESSAGES of ``folder`` as Dovecot sees it now; ``create`` makes the folder if missing.

        Opening the folder here also makes the auto folders exist on disk, owned by the mail
        uid, before anyone writes into them as root.
        """
        if create and folder not in self.doveadm("mailbox", "list", "-u", user.name).splitlines():
            self.doveadm("mailbox", "create", "-u", user.name, folder)
        status = self.doveadm("mailbox", "status", "-u", user.name, "messages", folder)
        return int(status.strip().rpartition("=")[2])

    def set_uidvalidity(self, user: MailUser, folder: str, value: int) -> None:
        """Change UIDVALIDITY, as a server rebuild would; clients must then resync the folder."""
        self.doveadm("mailbox", "update", "-u", user.name, "--uid-validity", str(value), folder)

    def expunge(self, user: MailUser, folder: str, uids: str | Iterable[int]) -> None:
        """Expunge ``uids`` (an IMAP set like ``"1:*"`` or ints) behind any client's back."""
        self.doveadm("expunge", "-u", user.name, "mailbox", folder, "uid", _uid_set(uids))

    def move(self, user: MailUser, source: str, dest: str, uids: str | Iterable[int]) -> None:
        """Move ``uids`` from ``source`` to ``dest``, as another client would."""
        self.doveadm("move", "-u", user.name, dest, "mailbox", source, "uid", _uid_set(uids))

    def connector_settings(self, user: MailUser, **more: str) -> dict[str, str]:
        """An `imap` connector's settings for `user`'s mailbox here (its password is a secret)."""
        return {
            "host": self.host,
            "port": str(self.imaps_port),
            "username": user.name,
            "ca_file": str(self.cert_path),
            **more,
        }

    def kick(self, user: MailUser | str) -> None:
        """Drop all IMAP connections of ``user`` (a user, a name, or a mask like ``"*"``)."""
        name = user.name if isinstance(user, MailUser) else user
        self._run(self._doveadm, "-c", str(self.conf_path), "kick", name, ok_codes=(0, 68))

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c <our conf> *args`` and return stdout; raises DovecotError on failure."""
        return self._run(self._doveadm, "-c", str(self.conf_path), *args)

    def log_text(self) -> str:
        """The server log plus anything Dovecot printed before its log process was up."""
        parts = [self.root / "dovecot.log", self.root / "dovecot.stderr"]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())

    @staticmethod
    def _run(*args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode not in ok_codes:
            raise DovecotError(
                f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    # Process lifecycle

    def start(self) -> None:
        """Start Dovecot on fresh free ports, retrying when another process grabbed one first."""
        for attempt in range(3):
            self.imap_port, self.imaps_port = _free_ports(self.host, 2)
            self.conf_path.write_text(render_config(self), encoding="utf-8")
            if self.oauth2_url is not None:
                self.oauth2_conf_path.write_text(render_oauth2_config(self), encoding="utf-8")
            try:
                self._spawn()
                return
            except DovecotError:
                if attempt == 2 or "Address already in use" not in self.log_text():
                    raise

    def _spawn(self) -> None:
        with open(self.root / "dovecot.stderr", "wb") as stderr:
            self._process = subprocess.Popen(
                [self._dovecot, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Ready means both listeners greet with ``* OK``, the imaps one through TLS."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        pending = [(self.imap_port, None), (self.imaps_port, self.ssl_context())]
        while pending:
            if self._process.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with {self._process.returncode}:\n{self.log_text()}"
                )
            port, context = pending[0]
            with contextlib.suppress(OSError):
                if _greeting(self.host, port, context).startswith(b"* OK"):
                    pending.pop(0)
                    continue
            if time.monotonic() > deadline:
                raise DovecotError(f"dovecot did not greet on port {port}:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _greeting(host: str, port: int, context: ssl.SSLContext | None) -> bytes:
    with socket.create_connection((host, port), timeout=1) as raw:
        if context is None:
            return raw.recv(256)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.recv(256)


def render_config(server: Dovecot) -> str:
    """The whole dovecot.conf (2.3 syntax); nothing is read from /etc/dovecot."""
    root = server.root
    dh = Path("/usr/share/dovecot/dh.pem")
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
instance_name = crmhub-test-{root.name}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = {server.host}
shutdown_clients = yes
ssl = yes
ssl_cert = <{server.cert_path}
ssl_key = <{root}/tls/key.pem
{f"ssl_dh = <{dh}" if dh.exists() else ""}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = {"no" if server.allow_plaintext else "yes"}
auth_mechanisms = plain login{" xoauth2 oauthbearer" if server.oauth2_url else ""}
auth_failure_delay = 0
auth_verbose = yes
login_greeting = Dovecot (crmhub test) ready.
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {server.users_dir}/%u
{"  mechanisms = plain login" if server.oauth2_url else ""}
}}
{_oauth2_passdb(server)}userdb {{
  driver = passwd-file
  args = username_format=%u {server.users_dir}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox "Geschäftlich" {{
    auto = subscribe
  }}
}}
# No anvil penalty socket: otherwise one failed login delays the next ones from 127.0.0.1 by
# up to 15 s, and tests fail logins on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {server.imap_port}
  }}
  inet_listener imaps {{
    port = {server.imaps_port}
    ssl = yes
  }}
}}
"""


def _oauth2_passdb(server: Dovecot) -> str:
    """The oauth2 passdb, for the token mechanisms only; passwd-file then serves only PLAIN and
    LOGIN, so a token is never compared with a password nor a password sent to the endpoint."""
    if server.oauth2_url is None:
        return ""
    return f"""\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {server.oauth2_conf_path}
}}
"""


def render_oauth2_config(server: Dovecot) -> str:
    """dovecot-oauth2.conf.ext (see /usr/share/dovecot/dovecot-oauth2.conf.ext): RFC 7662
    introspection by POST, the login taken from ``username``, only ``"active": true`` accepted.

    Without a ``tokeninfo_url`` Dovecot goes straight to the introspection endpoint.
    """
    return f"""\
introspection_url = {server.oauth2_url}
introspection_mode = post
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


def dovecot_version() -> str:
    """``dovecot --version``, e.g. ``2.3.19.1 (9b53102964)``."""
    dovecot, _ = find_dovecot()
    return subprocess.run(
        [dovecot, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


@contextlib.contextmanager
def start_dovecot(
    *, allow_plaintext: bool = True, oauth2_url: str | None = None
) -> Iterator[Dovecot]:
    """Run one Dovecot in a private temp dir for the duration of the ``with`` block.

    ``oauth2_url`` adds XOAUTH2/OAUTHBEARER logins checked against that token introspection
    endpoint (see `Dovecot`).

    The dir lives on tmpfs when there is one (creating 5,000 Maildir files on a VM disk takes
    seconds, on tmpfs a tenth of that) and gets mode 0755 because Dovecot's unprivileged
    processes must reach the users and mail inside it; pytest's own tmp dirs are 0700.
    """
    version = dovecot_version()
    if not version.startswith("2.3."):
        raise DovecotError(f"tests/integration/dovecot.py writes 2.3 config; found {version}")
    shm = Path("/dev/shm")
    scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="crmhub-dovecot-", dir=scratch))
    server = Dovecot(root, allow_plaintext=allow_plaintext, oauth2_url=oauth2_url)
    try:
        os.chmod(root, 0o755)
        write_self_signed_cert(root / "tls")
        (root / "home").mkdir()
        server.users_dir.mkdir(mode=0o750)
        shutil.chown(server.users_dir, group="dovecot")
        server.reset()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
