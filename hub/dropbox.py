"""`crmhub dropbox`: an SMTP server that logs what staff BCC or forward to a dropbox address.

Logging a mail must be as easy as adding a BCC, so the dropbox speaks plain SMTP and any mail
client or relay can reach it. Because whatever it accepts lands on customer timelines, it takes
mail only for its own addresses, only from our own domains, and only from a trusted network or a
crmhub user who logged in (after STARTTLS, so passwords never cross the wire in clear). Every
accepted mail is stored: one that cannot be read goes to quarantine, never to the floor. Only
mail marked private (Sensitivity: Private or Personal) is accepted and stored nowhere, and the
reply says so.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import logging
import socket
import ssl
from base64 import b64decode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from sqlalchemy import select

from config.settings import ConfigError, Settings
from connectors.base import MalformedItem, PrivateItem
from connectors.forwarded import unwrap
from connectors.mail import marked_private, translate_message
from hub.bootstrap import Hub
from hub.deciding import decide
from hub.model import Interaction, Quarantined, RawItem, Translated
from hub.screening import load_screen, screen_items
from storage.ingest import Provenance
from storage.tables import InteractionRow
from storage.users import check_password, hash_password, user_by_email

log = logging.getLogger(__name__)
CONNECTOR = "dropbox"
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DropboxPolicy:
    """Who may hand mail to the dropbox, and for which addresses; built from the settings."""

    addresses: frozenset[str]
    internal_domains: tuple[str, ...]
    networks: tuple[_Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> DropboxPolicy:
        if not settings.dropbox_addresses:
            raise ConfigError(
                "dropbox_addresses is empty: set CRMHUB_DROPBOX_ADDRESSES (e.g. log@crm.example) "
                "to the addresses staff BCC or forward mail to"
            )
        if not settings.internal_domains:
            raise ConfigError(
                "internal_domains is empty: the dropbox takes mail only from our own domains; "
                "set CRMHUB_INTERNAL_DOMAINS"
            )
        return cls(
            frozenset(a.strip().lower() for a in settings.dropbox_addresses),
            tuple(d.lower() for d in settings.internal_domains),
            tuple(ipaddress.ip_network(n, strict=False) for n in settings.dropbox_networks),
        )

    def trusts(self, peer: Any) -> bool:
        """Whether the client's address is in one of the dropbox networks."""
        host = peer[0] if isinstance(peer, tuple) and peer else peer
        try:
            address = ipaddress.ip_address(str(host).partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def is_staff(self, address: str) -> bool:
        domain = address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".")
        return bool(domain) and any(
            domain == d or domain.endswith("." + d) for d in self.internal_domains
        )


class DropboxHandler:
    """aiosmtpd handler: the policy at MAIL, RCPT and AUTH; the real pipeline at DATA.

    AUTH PLAIN and LOGIN are implemented here rather than through aiosmtpd's `authenticator`
    callback, because that callback is synchronous and the user store is not.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.policy = DropboxPolicy.from_settings(hub.settings)
        self._zone = ZoneInfo(hub.settings.timezone)
        self._ingest_lock = asyncio.Lock()

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not session.authenticated and not self.policy.trusts(session.peer):
            return (
                "530 5.7.0 Authentication required: log in as a crmhub user "
                "(STARTTLS first), or send from a dropbox network"
            )
        if not self.policy.is_staff(address):
            return f"550 5.7.1 <{address}> is not a staff address; the dropbox logs staff mail only"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.strip().lower() not in self.policy.addresses:
            return f"550 5.1.1 <{address}> is not a dropbox address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content
        if not isinstance(data, bytes):
            data = str(data or "").encode("utf-8", "surrogateescape")
        try:
            return await self.log_mail(data, owner=(envelope.mail_from or "").strip().lower())
        except Exception:  # the SMTP request edge: on 451 the client retries later
            log.exception("dropbox: could not log a mail from %s", envelope.mail_from)
            return "451 4.3.0 The mail could not be logged; please try again later"

    async def log_mail(self, data: bytes, *, owner: str = "") -> str:
        """Unwrap a forward, translate, match and store; the SMTP reply says where it went.

        The staff member who handed the mail in owns it: until it is attributed to a customer,
        only they see it (DESIGN.md "Who sees what")."""
        external_id = f"sha256:{hashlib.sha256(data).hexdigest()}"
        try:
            original, interaction = await asyncio.to_thread(self._translate, data)
        except MalformedItem as e:
            async with self._ingest_lock:
                await self.hub.store.ingest(
                    CONNECTOR,
                    [],
                    [Quarantined(RawItem(external_id, data), str(e))],
                    {},
                    Provenance(owner),
                )
            log.info("dropbox: quarantined %s: %s", external_id, e)
            return f"250 2.0.0 Quarantined for review: {e}"
        except PrivateItem as e:  # never stored, and not refused: a retry would change nothing
            log.info("dropbox: not logged %s: %s", external_id, e)
            return f"250 2.0.0 Not logged, {e}"
        item = Translated(RawItem(external_id, original), interaction)
        index = await self.hub.identity_index()
        _, refused = screen_items(await load_screen(self.hub), [item], owner, index)
        if refused:  # blocklisted, or naming an erased person: as PrivateItem, never stored
            log.info("dropbox: not logged %s: %s", external_id, refused[0].reason)
            return f"250 2.0.0 Not logged: {refused[0].reason}"
        stored = decide(item, index)
        async with self._ingest_lock:
            await self.hub.store.ingest(CONNECTOR, [stored], [], {}, Provenance(owner))
        async with self.hub.sessions() as session:
            interaction_id = (
                await session.execute(
                    select(InteractionRow.id).where(
                        InteractionRow.dedupe_key == interaction.dedupe_key
                    )
                )
            ).scalar_one()
        log.info("dropbox: logged %s as interaction %d", external_id, interaction_id)
        return f"250 2.0.0 Logged as interaction {interaction_id}"

    def _translate(self, data: bytes) -> tuple[bytes, Interaction]:
        """The mail to log; PrivateItem when it, or the forward around it, is marked private
        (the forward's mark counts too: an inline forward keeps no header of the original)."""
        settings = self.hub.settings
        if private := marked_private(data):
            raise PrivateItem(private)
        original = unwrap(
            data, self.policy.internal_domains, self.policy.addresses, local_zone=self._zone
        )
        interaction = translate_message(
            original,
            fallback_date=datetime.now(UTC),
            max_header_bytes=settings.max_header_bytes,
            max_message_bytes=settings.max_message_bytes,
        )
        return original, interaction

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        refusal = self._auth_refusal(server)
        if refusal:
            return refusal
        blob = await server.challenge_auth("") if len(args) == 1 else _b64(args[1])
        if blob is MISSING:  # challenge_auth has answered already
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00") if isinstance(blob, bytes) else []
        if len(parts) != 3:
            return _failed("501 5.5.2 Cannot decode the response")
        return await self._check(parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        refusal = self._auth_refusal(server)
        if refusal:
            return refusal
        login = (
            await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if len(args) == 1
            else _b64(args[1])
        )
        if login is MISSING:
            return AuthResult(success=False, handled=True)
        if not isinstance(login, bytes):
            return _failed("501 5.5.2 Cannot decode the response")
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(login, password)

    def _auth_refusal(self, server: SMTP) -> AuthResult | None:
        session = server.session
        if session is None or session.ssl is not None or self.policy.trusts(session.peer):
            return None
        return _failed("538 5.7.11 Encryption required: use STARTTLS before AUTH")

    async def _check(self, login: bytes, password: bytes) -> AuthResult:
        email = login.decode("utf-8", "replace").strip().lower()
        secret = password.decode("utf-8", "replace")
        async with self.hub.sessions() as session:
            user = await user_by_email(session, email)
        known = user is not None and bool(user.password_hash)
        # An unknown login is checked against a dummy hash: refusals take equally long.
        stored = user.password_hash if user is not None and known else _dummy_hash()
        ok = await asyncio.to_thread(check_password, secret, stored) and known
        if not ok:
            log.info("dropbox: refused a login as %s", email)
            return _failed("535 5.7.8 Authentication credentials invalid")
        return AuthResult(success=True, auth_data=email)


def _failed(reply: str) -> AuthResult:
    """A refusal that aiosmtpd answers with `reply` (its default `handled=True` stays silent)."""
    return AuthResult(success=False, handled=False, message=reply)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("no such user")


def _b64(value: str) -> bytes | None:
    try:
        return b64decode(value.encode(), validate=True)
    except ValueError:
        return None


def smtp_parameters(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiosmtpd's SMTP (or Controller) that the dropbox policy needs.

    aiosmtpd's own `auth_require_tls` would also refuse AUTH from a trusted network without
    TLS; the handler enforces the rule per client instead.
    """
    parameters: dict[str, Any] = {
        "auth_require_tls": False,
        "enable_SMTPUTF8": True,
        "ident": "crmhub dropbox",
    }
    cert, key = settings.dropbox_tls_cert, settings.dropbox_tls_key
    if bool(cert) != bool(key):
        raise ConfigError("dropbox_tls_cert and dropbox_tls_key must be set together")
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"dropbox_tls_cert={cert}, dropbox_tls_key={key}: cannot load them ({e})"
            ) from e
        parameters["tls_context"] = context
    return parameters


def serve_dropbox(hub: Hub, host: str, port: int) -> int:
    """Run the dropbox until interrupted; ConfigError when it cannot run as configured."""
    handler = DropboxHandler(hub)
    parameters = smtp_parameters(hub.settings)
    parameters["hostname"] = socket.gethostname()
    settings = hub.settings
    log.info(
        "dropbox addresses %s; trusted networks %s; STARTTLS %s",
        ", ".join(sorted(handler.policy.addresses)),
        ", ".join(settings.dropbox_networks) or "none",
        "on" if "tls_context" in parameters else "off",
    )
    if "tls_context" not in parameters:
        log.warning(
            "dropbox has no TLS (dropbox_tls_cert/dropbox_tls_key): only clients in "
            "dropbox_networks can hand it mail"
        )
    if any(n.num_addresses > 2**16 for n in handler.policy.networks):
        log.warning("dropbox trusts large networks without login: %s", settings.dropbox_networks)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(handler, **parameters), host, port)
        addresses = ", ".join(sorted(handler.policy.addresses))
        print(f"crmhub dropbox for {addresses} listening on {host}:{port}", flush=True)
        try:
            await server.serve_forever()
        finally:
            server.close()
            await hub.close()

    asyncio.run(main())
    return 0
