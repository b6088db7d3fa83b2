"""Raw bytes kept compressed, addressed by content; an S3-compatible store can follow."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.packing import pack, unpack
from storage.tables import BlobRow
from storage.upsert import insert_new, stored_ids


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    size: int
    packed: bytes

    @classmethod
    def of(cls, data: bytes, digest: str = "", packed: bytes | None = None) -> Blob:
        if not digest or packed is None:
            digest, packed = pack(data)
        return cls(digest, len(data), packed)


async def store_blobs(session: AsyncSession, contents: list[Blob]) -> dict[str, int]:
    """Store each distinct content once; return sha256 -> blob id."""
    by_sha = {c.sha256: c for c in contents}
    ids = await stored_ids(session, BlobRow.__table__, "sha256", list(by_sha))
    fresh = [(sha, blob.size, blob.packed) for sha, blob in by_sha.items() if sha not in ids]
    columns = ("sha256", "size", "data")
    ids.update((await insert_new(session, BlobRow.__table__, columns, fresh, "sha256"))[0])
    return ids


async def read_blob(session: AsyncSession, blob_id: int) -> bytes:
    row = await session.get(BlobRow, blob_id)
    return unpack(row.data) if row else b""
