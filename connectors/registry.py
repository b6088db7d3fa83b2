"""Connector kinds by name; a dotted path `package.module:Class` loads a third-party one."""

from __future__ import annotations

import importlib

from connectors.base import ConfigurationError, Connector

KINDS: dict[str, str] = {
    "mbox": "connectors.mbox:MboxConnector",
    "maildir": "connectors.maildir:MaildirConnector",
    "eml": "connectors.eml:EmlConnector",
    "ics": "connectors.ics:IcsConnector",
    "asterisk-cdr": "connectors.asterisk_cdr:AsteriskCdrConnector",
    "imap": "connectors.imap:ImapConnector",
    "smtp": "connectors.smtp:SmtpConnector",
    "exchange": "connectors.exchange:ExchangeConnector",
    "m365": "connectors.m365:M365Connector",
    "twilio": "connectors.twilio:TwilioConnector",
    "pbx-webhook": "connectors.pbx_webhook:PbxWebhookConnector",
    "asterisk-ami": "connectors.asterisk_ami:AsteriskAmiConnector",
    "caldav": "connectors.caldav:CalDavConnector",
}


def connector_class(kind: str) -> type[Connector]:
    target = KINDS.get(kind, kind)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        known = ", ".join(sorted(KINDS))
        raise ConfigurationError(
            f"unknown connector kind {kind!r}; known kinds: {known}, or package.module:Class"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(f"cannot load connector kind {kind!r}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigurationError(f"{target} is not a crmhub Connector")
    return cls
