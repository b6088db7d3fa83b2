"""Finding a person in stored text: the ways their addresses, numbers and names are written.

Erasure must find a person where no index leads: in quarantined raw bytes, in review
questions and audit entries (JSON), in the subject line and notes of an item it keeps for its
other parties. Matching is by lower-case substring, which errs towards removing too much: a
quarantined mail that merely mentions the person is removed with them. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ERASED = "[erased]"
MIN_NEEDLE = 5  # shorter strings (an extension, a first name) would match almost anything


@dataclass(frozen=True)
class Mentions:
    needles: tuple[str, ...]

    @classmethod
    def of(cls, spellings: Iterable[str]) -> Mentions:
        """From every spelling of the person (addresses and numbers as normalised and as
        written, full names); too short ones are left out, see MIN_NEEDLE."""
        kept = {s.strip().lower() for s in spellings if len(s.strip()) >= MIN_NEEDLE}
        return cls(tuple(sorted(kept, key=lambda s: (-len(s), s))))

    def in_text(self, text: str | None) -> bool:
        if not text:
            return False
        lowered = text.lower()
        return any(needle in lowered for needle in self.needles)

    def in_bytes(self, data: bytes) -> bool:
        """Raw bytes read as UTF-8 and, for older mail, as Latin-1."""
        return self.in_text(data.decode("utf-8", "replace")) or self.in_text(data.decode("latin-1"))

    def in_value(self, value: Any) -> bool:
        """Whether any string in a JSON value (keys included) mentions the person."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, dict):
            return any(self.in_text(str(k)) or self.in_value(v) for k, v in value.items())
        if isinstance(value, list):
            return any(self.in_value(v) for v in value)
        return False

    def scrub(self, value: Any) -> Any:
        """A JSON value with every string that mentions the person replaced by ERASED (and
        every dict entry whose key does, dropped)."""
        if isinstance(value, str):
            return ERASED if self.in_text(value) else value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items() if not self.in_text(str(k))}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value
