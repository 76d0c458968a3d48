"""Consistency check between the database and the blob store (``meddav fsck``).

Finds, and unless told otherwise removes:

- orphan blobs: committed to the store but referenced by no version (a crash
  between a blob's rename and its database commit, or after an overwrite
  committed but before the old blob was deleted);
- unfinished uploads (temporary objects of a process that died);
- version rows no node points to.

Reports, never "fixes": versions whose blob is missing (data loss; restore the
blob store from backup).

While a server runs on the same data directory, an upload may be between its
blob commit and its database commit; fsck then leaves alone blobs and
uploads younger than ``grace_seconds`` (an hour by default).  With no server
running, everything unreferenced is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import delete, select

from server.db.models import nodes_t, versions_t
from server.instance import Instance

__all__ = ["FsckReport", "fsck"]

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]


def _no_progress(items: Iterable[T], _label: str) -> Iterator[T]:
    yield from items


@dataclass
class FsckReport:
    blobs_checked: int = 0
    orphan_blobs: list[str] = field(default_factory=list)
    skipped_recent: int = 0
    stale_uploads: int = 0
    orphan_versions: list[int] = field(default_factory=list)
    missing: list[tuple[int, str]] = field(default_factory=list)  # (node id, blob id)
    removed: bool = False

    def lines(self) -> list[str]:
        verb = "removed" if self.removed else "found"
        out = [f"blobs checked: {self.blobs_checked}"]
        out.append(f"orphan blobs {verb}: {len(self.orphan_blobs)}")
        if self.skipped_recent:
            out.append(f"recent blobs left alone (a server is running): {self.skipped_recent}")
        if self.removed:
            out.append(f"unfinished uploads removed: {self.stale_uploads}")
        out.append(f"version rows without a node {verb}: {len(self.orphan_versions)}")
        out.append(f"files whose blob is missing: {len(self.missing)}")
        out.extend(f"  node {node_id}: blob {blob_id} missing" for node_id, blob_id in self.missing)
        return out


def fsck(
    instance: Instance,
    *,
    remove: bool = True,
    grace_seconds: float | None = None,
    now: float | None = None,
    progress: Any = None,
) -> FsckReport:
    """Check (and by default repair) the instance; see the module docstring."""
    now = time.time() if now is None else now
    if grace_seconds is None:
        grace_seconds = 3600.0 if instance.is_served() else 0.0
    cutoff = now - grace_seconds
    show: Progress[Any] = progress or _no_progress
    report = FsckReport(removed=remove)

    with instance.db.read() as c:
        referenced = {row.blob_id: row.id for row in c.all(select(versions_t.c.id, versions_t.c.blob_id))}
        in_use = {
            row.version_id: row.id
            for row in c.all(select(nodes_t.c.version_id, nodes_t.c.id).where(nodes_t.c.version_id.is_not(None)))
        }

    present: set[str] = set()
    for info in show(instance.blobs.iter_blobs(), "blobs"):
        report.blobs_checked += 1
        present.add(info.blob_id)
        version_id = referenced.get(info.blob_id)
        if version_id is not None and version_id in in_use:
            continue
        if info.mtime > cutoff:
            report.skipped_recent += 1
            continue
        report.orphan_blobs.append(info.blob_id)
        if remove:
            instance.blobs.delete(info.blob_id)

    for blob_id, version_id in referenced.items():
        if version_id not in in_use:
            report.orphan_versions.append(version_id)
        elif blob_id not in present:
            report.missing.append((in_use[version_id], blob_id))

    if remove:
        report.stale_uploads = instance.blobs.sweep_uploads(older_than=cutoff)
        if report.orphan_versions:
            with instance.db.write() as c:
                c.run(delete(versions_t).where(versions_t.c.id.in_(report.orphan_versions)))
    return report
