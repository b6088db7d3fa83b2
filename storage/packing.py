"""The stored form of raw bytes and body texts: SHA-256 for the address, zstd for the content.

Pure and free of database imports, so translation workers can pack what they translated.

The translation workers hash and compress on cores of their own, so that the busy main process
need not: what they packed travels to storage as the `Packed*` forms of the domain types below.
Each is the domain object it extends (the pipeline, matching and the owner rules read it as
such), with the packed bytes next to it; storage packs whatever arrives unpacked itself.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from dataclasses import dataclass

import zstandard

from hub.model import Attachment, Interaction, RawItem

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Measured on 10,000 bench mails (128 MB): zstd level 3 packs to 27.0 % in 0.31 s, zlib level 1
# to 29.6 % in 0.78 s. Blobs written before the switch are zlib streams and are still read.
# Level 1: 28.3 %, 15 % faster than level 3 on mails and 6 % on body texts (21.1 % against
# 20.6 %); packing was a fifth of a translation worker's time.
ZSTD_LEVEL = 1
_local = threading.local()  # a compressor is not thread-safe, and costs 10 us to set up


def compress(data: bytes) -> bytes:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(data)


def pack(data: bytes) -> tuple[str, bytes]:
    """(sha256 hex, stored form) of some content; pure, so it can run in a worker process."""
    return hashlib.sha256(data).hexdigest(), compress(data)


def pack_text(text: str) -> bytes | None:
    """A body text as storage keeps it (UTF-8, compressed); None for no text."""
    return compress(text.encode("utf-8", "surrogatepass")) if text else None


def unpack_text(packed: bytes | None) -> str:
    return unpack(packed).decode("utf-8", "surrogatepass") if packed else ""


def unpack(packed: bytes) -> bytes:
    """The content again, from a zstd frame or (older blobs) a zlib stream."""
    if packed.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().decompress(packed)
    return zlib.decompress(packed)


@dataclass(frozen=True, slots=True, kw_only=True)
class PackedRaw(RawItem):
    """A raw item whose bytes a translation worker hashed and compressed already."""

    digest: str  # sha256 hex of `data`
    packed: bytes  # `data` as storage keeps it


@dataclass(frozen=True, slots=True, kw_only=True)
class PackedAttachment(Attachment):
    """An attachment whose body was hashed and compressed already; `content` is then None,
    so that the body is not sent between processes twice."""

    digest: str  # sha256 hex of the content
    packed: bytes  # the content as storage keeps it


@dataclass(slots=True, kw_only=True)
class PackedInteraction(Interaction):
    """An interaction whose body text was compressed already (`pack_text`); `body_text` is
    then empty, so that the text is not sent between processes twice."""

    packed_body: bytes | None = None


def raw_digest(raw: RawItem) -> str:
    """The sha256 hex of a raw item's bytes: the worker's, or computed here."""
    return raw.digest if isinstance(raw, PackedRaw) else hashlib.sha256(raw.data).hexdigest()


def attachment_digest(attachment: Attachment) -> str:
    if isinstance(attachment, PackedAttachment):
        return attachment.digest
    return hashlib.sha256(attachment.content or b"").hexdigest()


def kept(attachment: Attachment) -> bool:
    """Whether an attachment's body is there to store (as content, or packed already); a body
    dropped at the size caps is not."""
    return isinstance(attachment, PackedAttachment) or bool(attachment.content)


def stored_body(interaction: Interaction) -> bytes | None:
    """The body text as storage keeps it: packed by the worker, or packed here."""
    if isinstance(interaction, PackedInteraction) and not interaction.body_text:
        return interaction.packed_body
    return pack_text(interaction.body_text)


def body_text(interaction: Interaction) -> str:
    """The body text, unpacked again where a worker sent it packed only (for the full-text
    index: unpacking a few KB costs microseconds, the analysis far more)."""
    if isinstance(interaction, PackedInteraction) and not interaction.body_text:
        return unpack_text(interaction.packed_body)
    return interaction.body_text
