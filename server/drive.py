"""A user's drive as every surface shows it: their private tree, their organisation's group folders,
and what colleagues shared with them, at its root.

The WebDAV provider (:mod:`server.dav.provider`) and the owner's web pages both
go through :class:`Drive`, so that a name means the same item everywhere: at the
root, a private item first, then a group folder of that name, then an item a
colleague shared; a shared item whose name is taken there shows with its owner's
name, ``name (owner).ext`` (then ``name (owner) (2).ext``...): never hidden, never
hiding, and untouched by other owners' shares coming and going (it changes when the clash itself goes:
``x (carol).pdf`` becomes ``x.pdf`` once the user's own ``x.pdf`` is gone).  What lies below a shared item is
judged by :mod:`server.policy` as reached through that share
(:class:`~server.policy.Shared`), at one instant, so a revocation or an expiry
applies to the very next request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from server import policy
from server.crypto import lookup_form
from server.errors import NotFound, PolicyDenied
from server.policy import Action, Principal, Shared, ShareGrant
from server.tree import Entry, Tree, free_name
from server.tree._names import fitted

if TYPE_CHECKING:
    from server.sharing import Shares

__all__ = ["Drive", "Located", "Member", "Received"]


def with_suffix(name: str, suffix: str) -> str:
    """``name (suffix).ext``, shortened if need be to fit a name's bytes."""
    path = PurePosixPath(name)
    stem, extension = (path.stem, path.suffix) if path.stem else (name, "")
    return fitted(stem, f" ({suffix}){extension}")


@dataclass(frozen=True, slots=True)
class Received:
    """An item a colleague shared with the user, as it shows at the root of their drive."""

    name: str  # at the drive's root: the item's own name, or a free one when that is taken there
    entry: Entry
    grant: ShareGrant


class Member(NamedTuple):
    """A folder's member as listed: its name there, its entry, the share it is reached through."""

    name: str
    entry: Entry
    via: ShareGrant | None = None


class Located(NamedTuple):
    """A node found by a path of the drive, with the share it was reached through (None: directly)."""

    entry: Entry
    via: ShareGrant | None = None


class Drive:
    """The drive of ``principal`` at the instant ``at`` (one request: one instant, one answer)."""

    def __init__(self, tree: Tree, shares: Shares | None, principal: Principal, at: float) -> None:
        self.tree = tree
        self.shares = shares
        self.principal = principal
        self.at = at
        self._received: dict[str, Received] | None = None

    # -- the policy, as this drive reaches nodes ----------------------------------------------------

    def subject(self, entry: Entry, via: ShareGrant | None = None) -> Any:
        """What the policy is asked about: the node itself, or as reached through the share ``via``."""
        return entry if via is None else Shared(entry, via, self.at)

    def allows(self, entry: Entry, action: Action, via: ShareGrant | None = None) -> bool:
        return policy.allows(self.principal, self.subject(entry, via), action)

    def require(self, located: Located, action: Action) -> None:
        if not self.allows(located.entry, action, located.via):
            raise PolicyDenied(f"{action.value} refused on node {located.entry.id}")

    # -- the root -------------------------------------------------------------------------------------

    def received(self) -> dict[str, Received]:
        """What colleagues shared with the user and it may still read, by the name it shows at the root
        (lookup form); read once per drive."""
        if self._received is not None:
            return self._received
        found: dict[str, Received] = {}
        self._received = found
        if self.shares is None:
            return found
        root, org = self.principal.root_id, self.principal.org_id
        shares = self.shares.for_recipient(self.principal.user_id)
        # A few statements whatever the number of shares: their nodes, which of their names the root holds
        # already, the group folders' names; only a name made free with a suffix is looked up on its own.
        entries = self.tree.get_many(share.node_id for share in shares)
        names = [entry.name for entry in entries.values()]
        looked_up = {lookup_form(name) for name in names}
        private = self.tree.names_held(root, org, names) if names else set()
        groups = {lookup_form(group.name) for group in self.tree.group_folders(org)} if names else set()

        def taken(name: str) -> bool:
            lookup = lookup_form(name)
            if lookup in found or lookup in groups or lookup in private:
                return True
            return lookup not in looked_up and bool(self.tree.resolve_below(root, org, [name]))

        owners: dict[int, str] = {}
        for share in shares:
            entry = entries.get(share.node_id)
            if entry is None:  # deleted meanwhile: the share went with it
                continue
            grant = share.grant()
            if not self.allows(entry, Action.READ, grant):
                continue
            name = entry.name
            if taken(name):  # named after its owner, which stays put when other shares come and go
                if share.owner_id not in owners:
                    owners[share.owner_id] = self.shares.accounts.get_by_id(share.owner_id).username
                name = free_name(with_suffix(entry.name, owners[share.owner_id]), taken)
            found[lookup_form(name)] = Received(name, entry, grant)
        return found

    def top(self, name: str, *, private: bool = True) -> Located | None:
        """The item ``name`` at the root: a private one, else a group folder, else one a colleague shared
        (before the policy's say on it).  ``private=False``: the caller knows there is no private one."""
        chain = self.tree.resolve_below(self.principal.root_id, self.principal.org_id, [name]) if private else []
        if chain:
            return Located(chain[0])
        group = self.tree.group_folder_named(self.principal.org_id, name)
        if group is not None:
            return Located(group)
        shared = self.received().get(lookup_form(name))
        return Located(shared.entry, shared.grant) if shared is not None else None

    def root_taken(self, name: str, *, but: int | None = None) -> bool:
        """Whether ``name`` at the root is an item's already (a private one, a group folder, a shared one),
        other than node ``but`` (an item renamed to its own name in other letters)."""
        found = self.top(name)
        return found is not None and found.entry.id != but

    def chain(self, names: Sequence[str]) -> tuple[list[Entry], ShareGrant | None]:
        """The entries along ``names`` from the root (the root itself not included), as far as they exist,
        and the share they are reached through; the policy not asked yet."""
        if not names:
            return [], None
        # A private path first, in one lookup (the tree's folder cache serves the folders on the way):
        # what a user's own traffic does, at no extra cost.
        chain = self.tree.resolve_below(self.principal.root_id, self.principal.org_id, names)
        if chain:
            return chain, None
        top = self.top(names[0], private=False)
        if top is None:
            return [], None
        first = top.entry
        below = self.tree.resolve_below(first.id, first.org_id, names[1:]) if first.is_dir and names[1:] else []
        return [first, *below], top.via

    def resolve(self, names: Sequence[str]) -> Located:
        """The node at ``names`` (``[]``: the root); NotFound for what is missing or what the policy hides."""
        if not names:
            return Located(self.tree.get(self.principal.root_id))
        chain, via = self.chain(names)
        if len(chain) != len(names) or not all(self.allows(e, Action.READ, via) for e in chain):
            raise NotFound("no such item")
        return Located(chain[-1], via)

    def is_root(self, entry: Entry) -> bool:
        return entry.id == self.principal.root_id

    def members(self, folder: Located, *, listed: Callable[[], list[Entry]] | None = None) -> list[Member]:
        """What ``folder`` holds that the user may see; at the root, the group folders and shared items too.
        ``listed``: the folder's own members when the caller has them already."""
        self.require(folder, Action.LIST)
        children = listed() if listed is not None else self.tree.children(folder.entry)
        members = [Member(e.name, e, folder.via) for e in children]
        if folder.via is None and self.is_root(folder.entry):
            members.extend(self.root_extras({lookup_form(m.name) for m in members}))
        return [m for m in members if self.allows(m.entry, Action.READ, m.via)]

    def root_extras(self, taken: set[str]) -> list[Member]:
        """What the root shows besides the private items (whose names, in lookup form, are ``taken``):
        the organisation's group folders not named like one of them, and the items colleagues shared."""
        groups = self.tree.group_folders(self.principal.org_id)
        extras = [Member(g.name, g) for g in groups if lookup_form(g.name) not in taken]
        extras.extend(Member(r.name, r.entry, r.grant) for r in self.received().values())
        return extras

    def shown_name(self, located: Located, names: Sequence[str]) -> str:
        """The name ``located`` shows under at the end of ``names`` (a shared item's may not be its own)."""
        if located.via is not None and located.entry.id == located.via.root_id and names:
            return names[-1]
        return located.entry.name
