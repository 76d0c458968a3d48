"""The one access policy: may this principal do this action on this subject?

Every permission question of MedDAV (a WebDAV method, a web page, an API call,
a plugin's facade) is answered here, from (principal, subject, action), and
nowhere else.  Callers resolve the subject, then call :func:`require` (or
:func:`allows` when they only need to filter a listing).  A subject is a node
(anything with the :class:`Node` attributes, e.g. ``server.tree.Entry``) or an
organisation (:class:`Organisation`, for account administration).

The rules, as a table (``tests/unit/test_policy.py`` holds the same table as
data and checks every cell):

- **Private tree.** Its owner may list, read, create, write, delete and share;
  nobody else may do anything, whatever their role: administering an
  organisation never opens its members' files.
- **Group folder** (owned by an organisation, shown in its members' drives).
  Members of that organisation list and read it; with ``member_access = "rw"``
  (the default) they also create, write and delete inside it.  Organisation
  admins may do all of that whatever the access mode, share its content and
  administer it.  The group folder's own root cannot be renamed or deleted
  through a drive (write, delete): that is administration, done from the admin
  pages or the CLI.  Nobody outside the organisation sees it, except that an
  instance admin may administer it (its settings, never its content).
- **Organisation.** Its org admins, and instance admins, may administer it
  (members, quotas, group folders, the audit log) and list its members;
  nothing about an organisation gives access to a node.
- **The instance** (:data:`INSTANCE`: its background jobs, dead letters and
  plugins): instance admins list and administer it; nobody else.
- **Plugins** act with their own :class:`PluginPrincipal`, never a user's:
  only in the organisations the operator granted them (``[plugins.<name>]
  organisations``), with ``read`` (list, read) or ``read-write`` access (also
  create and write; never delete, share or administer), and the group
  folder's own root stays out of their reach for writing.  On an
  organisation they may list its accounts (to look a user up), nothing more.
- A disabled principal may do nothing.

Roles are capabilities, not a hierarchy of trust: a future "support admin"
role administers organisations without any content action at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from server.errors import PolicyDenied

__all__ = [
    "INSTANCE",
    "PLUGIN_ACCESS",
    "ROLES",
    "ROLE_INSTANCE_ADMIN",
    "ROLE_MEMBER",
    "ROLE_ORG_ADMIN",
    "Action",
    "AnyPrincipal",
    "InstanceSubject",
    "Node",
    "Organisation",
    "PluginPrincipal",
    "Principal",
    "allows",
    "require",
    "second_factor_required",
]

ROLE_MEMBER = "member"
ROLE_ORG_ADMIN = "org_admin"
ROLE_INSTANCE_ADMIN = "instance_admin"
ROLES = (ROLE_MEMBER, ROLE_ORG_ADMIN, ROLE_INSTANCE_ADMIN)


class Action(enum.Enum):
    LIST = "list"  # see the members of a folder (of an organisation: its accounts)
    READ = "read"  # read a file's content or a node's properties
    CREATE = "create"  # add a new member to a folder (what a drop box allows)
    WRITE = "write"  # modify a node: content, properties, name
    DELETE = "delete"  # remove a node
    SHARE = "share"  # share a node with someone else
    ADMINISTER = "administer"  # manage accounts, group folders, keys; never implies READ


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking.  Built by ``server.auth`` from verified credentials."""

    user_id: int
    username: str
    org_id: int
    root_id: int
    disabled: bool = False
    role: str = ROLE_MEMBER


class Node(Protocol):
    """What the policy needs to know about a node."""

    @property
    def owner_id(self) -> int: ...

    @property
    def org_id(self) -> int: ...

    @property
    def group_id(self) -> int | None: ...

    @property
    def group_access(self) -> str | None: ...

    @property
    def parent_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation as the subject of a question (administering its accounts)."""

    org_id: int


@dataclass(frozen=True, slots=True)
class InstanceSubject:
    """The instance as the subject of a question (its jobs, dead letters and plugins)."""


INSTANCE = InstanceSubject()

_A = Action
#: What a plugin may be granted on the nodes of its organisations.
PLUGIN_ACCESS: dict[str, frozenset[Action]] = {
    "read": frozenset({_A.LIST, _A.READ}),
    "read-write": frozenset({_A.LIST, _A.READ, _A.CREATE, _A.WRITE}),
}


@dataclass(frozen=True, slots=True)
class PluginPrincipal:
    """A plugin acting through its facade (``server.plugins``): its name, the
    organisations it was granted, and its access there (a :data:`PLUGIN_ACCESS` key)."""

    plugin: str
    org_ids: frozenset[int]
    access: str = "read"
    disabled: bool = False

    @property
    def username(self) -> str:
        return f"plugin:{self.plugin}"


AnyPrincipal = Principal | PluginPrincipal
Subject = Node | Organisation | InstanceSubject

_PRIVATE_OWNER = frozenset({_A.LIST, _A.READ, _A.CREATE, _A.WRITE, _A.DELETE, _A.SHARE})
_CONTENT = frozenset({_A.LIST, _A.READ, _A.CREATE, _A.WRITE, _A.DELETE})
_READ_ONLY = frozenset({_A.LIST, _A.READ})
_NOT_ON_GROUP_ROOT = frozenset({_A.WRITE, _A.DELETE})
_ADMIN_ROLES = frozenset({ROLE_ORG_ADMIN, ROLE_INSTANCE_ADMIN})


def _group_actions(principal: Principal, node: Node) -> frozenset[Action]:
    if node.org_id != principal.org_id:
        return frozenset({_A.ADMINISTER}) if principal.role == ROLE_INSTANCE_ADMIN else frozenset()
    if principal.role in _ADMIN_ROLES:
        granted = _CONTENT | {_A.SHARE, _A.ADMINISTER}
    elif node.group_access == "rw":
        granted = _CONTENT
    else:
        granted = _READ_ONLY
    if node.parent_id is None:  # the group folder itself
        granted = granted - _NOT_ON_GROUP_ROOT
    return frozenset(granted)


def _plugin_actions(principal: PluginPrincipal, subject: Subject) -> frozenset[Action]:
    if isinstance(subject, InstanceSubject) or subject.org_id not in principal.org_ids:
        return frozenset()
    if isinstance(subject, Organisation):
        return frozenset({_A.LIST})
    granted = PLUGIN_ACCESS.get(principal.access, frozenset())
    if subject.group_id is not None and subject.parent_id is None:
        granted = granted - _NOT_ON_GROUP_ROOT
    return granted


def _actions(principal: AnyPrincipal, subject: Subject) -> frozenset[Action]:
    if principal.disabled:
        return frozenset()
    if isinstance(principal, PluginPrincipal):
        return _plugin_actions(principal, subject)
    if isinstance(subject, InstanceSubject):
        return frozenset({_A.LIST, _A.ADMINISTER}) if principal.role == ROLE_INSTANCE_ADMIN else frozenset()
    if isinstance(subject, Organisation):
        if principal.role == ROLE_INSTANCE_ADMIN or (
            principal.role == ROLE_ORG_ADMIN and subject.org_id == principal.org_id
        ):
            return frozenset({_A.LIST, _A.ADMINISTER})
        return frozenset()
    if subject.group_id is not None:
        return _group_actions(principal, subject)
    if subject.owner_id == principal.user_id and subject.org_id == principal.org_id:
        return _PRIVATE_OWNER
    return frozenset()


def second_factor_required(role: str, *, organisation_requires: bool, admins_need: bool) -> bool:
    """Whether an account must have a second factor: admins (unless ``[web]
    admins_need_second_factor`` is off) and members of an organisation that requires one."""
    return organisation_requires or (admins_need and role in _ADMIN_ROLES)


def allows(principal: AnyPrincipal, subject: Subject, action: Action) -> bool:
    """True when ``principal`` may perform ``action`` on ``subject``."""
    return action in _actions(principal, subject)


def require(principal: AnyPrincipal, subject: Subject, action: Action) -> None:
    """Raise :class:`~server.errors.PolicyDenied` unless the action is allowed."""
    if not allows(principal, subject, action):
        who = principal.username if isinstance(principal, PluginPrincipal) else f"user {principal.user_id}"
        raise PolicyDenied(f"{action.value} denied to {who}")
