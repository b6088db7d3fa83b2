"""What IT should do about a connector's error, in one sentence: the error says what went wrong
(in the source's words), the hint where to look. Pure; the patterns follow the messages our
connectors and the libraries under them raise."""

from __future__ import annotations

HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("cannot be decrypted",),
        "CRMHUB_SECRET_KEY has changed: restore the old key, or enter the connector's secrets "
        "again.",
    ),
    (
        ("unknown setting", "missing setting", "unknown secret", "is not a positive number",
         "unknown connector kind", "cannot load connector kind", "is not a mail address",
         "create_contacts=", "; use full, subject", "; use on or off", "; use ssl, starttls",
         "; use starttls, ssl", "; use password or xoauth2"),
        "A setting is wrong: correct the one the message names.",
    ),
    (
        ("refused the login", "authentication", "authenticationfailed", "invalid credentials",
         "login failed", "535 ", "no password stored", "no oauth_token stored"),
        "The server refused the login: check the username, and enter the password or token "
        "again if it changed or expired.",
    ),
    (
        ("certificate", "tls with", "ssl", "starttls", "handshake", "wrong version number"),
        "The TLS connection failed: check the tls setting and the port, or set ca_file to the "
        "PEM bundle of your own CA or TLS-inspecting proxy.",
    ),
    (
        ("connect call failed", "connection refused", "name or service not known",
         "temporary failure in name resolution", "nodename nor servname", "no route to host",
         "network is unreachable", "timed out", "timeout", "connection reset"),
        "The server cannot be reached from the crmhub host: check the host name and port, DNS, "
        "and that the firewall lets crmhub through.",
    ),
    (
        ("permission denied",),
        "crmhub may not read this path: give the user crmhub runs as read access to it.",
    ),
    (
        ("not a readable", "no such file", "is not a folder", "is not a maildir"),
        "The file or folder is missing: check the path, and that the share holding it is "
        "mounted on the crmhub host.",
    ),
    (
        ("is not an mbox file", "is not an icalendar file", "not a call record"),
        "The file is not in the format this kind reads: check the path and the kind.",
    ),
    (
        ("no folder", "cannot open folder"),
        "A folder in the folders setting does not exist on the server: correct the setting "
        "(Test lists the folders there are).",
    ),
)  # fmt: skip


def hint_for(error: str) -> str:
    """The hint for an error message, "" for no error; a general one for an unknown error."""
    if not error:
        return ""
    text = error.lower()
    for needles, hint in HINTS:
        if any(needle in text for needle in needles):
            return hint
    return "Test the connector on its page; the message above is the source's own."
