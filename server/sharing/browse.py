"""What a link's recipient reaches on the share's web pages, whatever the surface draws.

:class:`ShareBrowser` walks from the shared item down, and asks
:mod:`server.policy` about every node as reached through the share
(:class:`~server.policy.Shared`) at one instant, the request's: what the policy
hides does not exist (:class:`~server.errors.NotFound`, never a "forbidden"
that would confirm a name), and what it refuses raises
:class:`~server.errors.PolicyDenied`.  A drop box's folder lists nothing; a file
put in a share never replaces another: a taken name gets a free one,
``name (2).ext``, so an upload never overwrites nor reveals what is there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from server import policy
from server.errors import NotFound, PolicyDenied
from server.policy import Action, Shared, SharePrincipal
from server.sharing import ShareInfo
from server.tree import Entry, Tree, Upload

__all__ = ["ShareBrowser", "ZipMember"]


@dataclass(frozen=True, slots=True)
class ZipMember:
    """A file of a folder being zipped, with its path inside the archive."""

    path: str
    entry: Entry


class ShareBrowser:
    """A share's content as its recipient may reach it at ``at`` (seconds since the epoch)."""

    def __init__(self, tree: Tree, share: ShareInfo, at: float) -> None:
        self.tree = tree
        self.share = share
        self.grant = share.grant()
        self.principal = SharePrincipal(self.grant)
        self.at = at

    def allows(self, entry: Entry, action: Action) -> bool:
        return policy.allows(self.principal, Shared(entry, self.grant, self.at), action)

    def require(self, entry: Entry, action: Action) -> None:
        if not self.allows(entry, action):
            raise PolicyDenied(f"{action.value} refused through share {self.share.id}")

    def visible(self, entry: Entry) -> bool:
        """Whether the recipient may know ``entry`` exists (a drop box's folder: to put files in)."""
        return self.allows(entry, Action.READ) or (entry.id == self.share.node_id and self.allows(entry, Action.CREATE))

    def resolve(self, names: Sequence[str]) -> Entry:
        """The node at ``names`` below the shared item (which is ``[]``); NotFound for anything hidden."""
        root = self.tree.get(self.share.node_id)
        chain = [root] + (self.tree.resolve_below(root.id, root.org_id, names) if names and root.is_dir else [])
        if len(chain) != len(names) + 1 or not all(self.visible(entry) for entry in chain):
            raise NotFound("no such item in this share")
        return chain[-1]

    def listing(self, folder: Entry) -> list[Entry]:
        """The members of ``folder`` the recipient may see, folders first, then by name."""
        if not folder.is_dir:
            raise NotFound("not a folder")
        if not self.allows(folder, Action.LIST):
            return []  # a drop box: nothing, not even names
        members = [e for e in self.tree.children(folder) if self.allows(e, Action.READ)]
        return sorted(members, key=lambda e: (not e.is_dir, e.name.casefold(), e.name))

    def open(self, entry: Entry) -> Iterator[bytes]:
        """The content of a file, in blocks; opened when first iterated."""
        self.require(entry, Action.READ)
        if entry.is_dir:
            raise NotFound("a folder has no content")
        return self.tree.blocks(entry)

    def walk(self, folder: Entry, prefix: str = "") -> Iterator[ZipMember]:
        """Every file below ``folder`` the recipient may read, with its path from ``folder`` (for a zip);
        folders are walked as they come, so a huge tree is never held in memory."""
        for entry in self.listing(folder):
            path = f"{prefix}{entry.name}"
            if entry.is_dir:
                yield from self.walk(entry, path + "/")
            else:
                yield ZipMember(path, entry)

    def upload(self, folder: Entry, name: str, *, expected_size: int | None) -> Upload:
        """Begin a file named ``name`` in ``folder``, never over another (a taken name gets a free one as
        the content is stored); the caller writes and finishes it.

        Raises PolicyDenied when the share does not let the recipient add files there, and
        QuotaExceeded when the owner's space cannot take ``expected_size``."""
        self.require(folder, Action.CREATE)
        return self.tree.upload(folder, name, expected_size=expected_size, new_only=True)
