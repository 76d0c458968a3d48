"""The one access policy: may this principal do this action on this node?

Every permission question of MedDAV (a WebDAV method, a web page, an API call,
a plugin's facade) is answered here, from (principal, node, action), and
nowhere else.  Callers resolve the node, then call :func:`require` (or
:func:`allows` when they only need to filter a listing).

Today's rules (the accounts and sharing issues extend them):

- a user may do everything but administer on the nodes they own, i.e. their
  private tree;
- a disabled user may do nothing;
- nobody may do anything on a node owned by someone else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from server.errors import PolicyDenied

__all__ = ["Action", "Principal", "Subject", "allows", "require"]


class Action(enum.Enum):
    LIST = "list"  # see the members of a folder
    READ = "read"  # read a file's content or a node's properties
    CREATE = "create"  # add a new member to a folder
    WRITE = "write"  # modify a node: content, properties, name
    DELETE = "delete"  # remove a node
    SHARE = "share"  # share a node with someone else
    ADMINISTER = "administer"  # manage accounts and keys; never implies READ


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking.  Built by ``server.auth`` from verified credentials."""

    user_id: int
    username: str
    org_id: int
    root_id: int
    disabled: bool = False


class Subject(Protocol):
    """What the policy needs to know about a node."""

    @property
    def owner_id(self) -> int: ...

    @property
    def org_id(self) -> int: ...


_OWNER_ACTIONS = frozenset({Action.LIST, Action.READ, Action.CREATE, Action.WRITE, Action.DELETE, Action.SHARE})


def allows(principal: Principal, node: Subject, action: Action) -> bool:
    """True when ``principal`` may perform ``action`` on ``node``."""
    if principal.disabled:
        return False
    if node.owner_id == principal.user_id and node.org_id == principal.org_id:
        return action in _OWNER_ACTIONS
    return False


def require(principal: Principal, node: Subject, action: Action) -> None:
    """Raise :class:`~server.errors.PolicyDenied` unless the action is allowed."""
    if not allows(principal, node, action):
        raise PolicyDenied(f"{action.value} denied to user {principal.user_id}")
