"""What happened, told to plugins: typed, documented, frozen, never ORM objects.

Events carry ids and facts, never file names or contents: a plugin that
needs the name or the bytes asks the facade for them (``plugin.node``, ``plugin.open_file``),
which goes through the policy with the plugin's own principal and is audited.
One hook receives them all (``meddav_event`` in :mod:`server.hooks`): a new
kind of event adds a class here, it does not change the hook contract.
Plugins match on the class (``isinstance`` or ``match``) and ignore the
others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_TYPES", "AccountCreated", "Event", "FileDeleted", "FileWritten", "NodeMoved", "from_payload"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Common fields: when, in which organisation, and who acted (None: the system)."""

    at: float = field(default_factory=time.time)
    org_id: int
    user_id: int | None = None

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_payload(self) -> dict[str, Any]:
        """A JSON-able form, for the job that delivers the event (sealed at rest).

        Fields are scalars (ids, sizes, flags), so a shallow copy is the whole of it: this runs in
        every change's transaction, where ``dataclasses.asdict``'s deep copy cost a third of the outbox."""
        return {"kind": self.kind, **vars(self)}


@dataclass(frozen=True, kw_only=True)
class FileWritten(Event):
    """A new file or a new version of a file was stored (its content is durable)."""

    node_id: int
    version_id: int
    parent_id: int
    size: int
    group_id: int | None = None
    created: bool = False


@dataclass(frozen=True, kw_only=True)
class FileDeleted(Event):
    """A file, or a folder with everything in it, was deleted."""

    node_id: int
    parent_id: int
    is_folder: bool = False


@dataclass(frozen=True, kw_only=True)
class NodeMoved(Event):
    """A file or folder got a new name or a new folder (its id stays)."""

    node_id: int
    old_parent_id: int
    new_parent_id: int


@dataclass(frozen=True, kw_only=True)
class AccountCreated(Event):
    """A user account was created (by an admin, the CLI or an invitation)."""

    created_user_id: int
    role: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls for cls in (FileWritten, FileDeleted, NodeMoved, AccountCreated)
}


def from_payload(payload: dict[str, Any]) -> Event:
    """The event a job payload describes (``Event.to_payload``); unknown fields are refused."""
    data = dict(payload)
    cls = EVENT_TYPES.get(str(data.pop("kind", "")))
    if cls is None:
        raise ValueError("unknown event kind")
    return cls(**data)
