"""Text from sources made safe to print on a terminal.

Folder and file names, server replies, CSV cells and mail headers are written by strangers. An
ESC sequence in them can recolour, retitle or clear the terminal (or worse, on some emulators);
a bidi override (U+202E) makes `evil.exe` read as `exe.live`; a carriage return or a line
break forges an extra line of output; a lone surrogate (a file name that is not UTF-8) makes
`print` raise. Every line the CLI prints goes through `printable`, which shows such characters
as visible escapes (`\\x1b`, `\\u202e`) instead: the reader sees that something odd is there,
and what. Pure: no I/O, no logging.
"""

from __future__ import annotations

import logging
import re

# C0 controls, DEL and C1 controls (Unicode category Cc); lone surrogates (Cs), which a
# strict UTF-8 terminal cannot take; the line and paragraph separators (Zl, Zp); and the
# bidirectional formatting characters (marks, embeddings, overrides, isolates). Other format
# characters (Cf) stay: zero-width joiners are part of emoji and of Persian and Indic names.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every unsafe character shown as a visible escape.

    `keep` names characters to leave alone, where the output's own shape needs them: "\\n" for
    a multi-line log record, never "\\t" for a source's text inside tab-separated output (the
    tabs between columns are the caller's, added after this).
    """
    if keep:
        return UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return UNSAFE.sub(_escape, text)


class PrintableFormatter(logging.Formatter):
    """Log records as `printable` text; line breaks stay (tracebacks span lines)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep="\n")
