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
- **Shares** (``server.sharing``).  A node reached through a share is the
  subject :class:`Shared`: the node, the share as :class:`ShareGrant`, and the
  time of the request.  The share's recipient (the colleague of a
  collaborative share, or the :class:`SharePrincipal` of whoever opened an
  external link) gets the share's mode there, while the share is live
  (neither revoked nor expired at that time): ``read`` lists and reads;
  ``write`` also creates, writes and deletes, but never deletes the shared
  item itself, nor renames a shared folder; ``dropbox`` (folders only) only
  creates in the shared folder and sees nothing of what it holds, except,
  for a moment, the files the recipient has just sent (``own_upload``).  A
  recipient never shares further nor administers.  A colleague's share needs
  both in the same organisation.  Anyone else, the owner included, is
  answered on the node as if no share were involved, and a link's
  principal gets nothing anywhere else.  A share itself (the subject
  :class:`ShareGrant`) is administered (edited, revoked) by the user who
  made it; whoever may share its node may also end it (the caller asks both),
  and so may the :class:`Operator` at the command line.  A share stops
  working while its maker's account is disabled.
- **Accounts** (the subject :class:`Account`: changing a user's role, quota,
  second factor, disabling it): instance admins administer every account;
  organisation admins the accounts of their organisation, except an
  instance admin's.
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
    "SHARE_MODES",
    "Account",
    "Action",
    "AnyPrincipal",
    "IdentifiedNode",
    "InstanceSubject",
    "Node",
    "Operator",
    "Organisation",
    "PluginPrincipal",
    "Principal",
    "ShareGrant",
    "SharePrincipal",
    "Shared",
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
class Account:
    """A user's account as the subject of an administrator's change."""

    user_id: int
    org_id: int
    role: str


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


#: The modes of a share: what its recipient may do through it.
SHARE_MODES = ("read", "write", "dropbox")


@dataclass(frozen=True, slots=True)
class ShareGrant:
    """A share as the policy sees it (``server.sharing`` builds it from the share's row)."""

    share_id: int
    root_id: int  # the shared file or folder
    owner_id: int
    org_id: int
    mode: str  # one of SHARE_MODES
    recipient_user_id: int | None  # the colleague of a collaborative share; None for an external link
    expires_at: float | None = None
    revoked: bool = False
    owner_disabled: bool = False  # a disabled account's shares stop working with it
    used_up: bool = False  # its downloads are all taken

    def live(self, at: float) -> bool:
        ended = self.revoked or self.owner_disabled or self.used_up
        return not ended and (self.expires_at is None or at < self.expires_at)


@dataclass(frozen=True, slots=True)
class SharePrincipal:
    """Whoever opened an external share's link and proved it (password or e-mailed code)."""

    share: ShareGrant
    disabled: bool = False

    @property
    def username(self) -> str:
        return f"share:{self.share.share_id}"


class IdentifiedNode(Node, Protocol):
    @property
    def id(self) -> int: ...

    @property
    def is_dir(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Shared:
    """A node reached through a share: the resolver walked from ``share.root_id`` down to ``node``,
    at the time ``at`` (seconds since the epoch) of the request."""

    node: IdentifiedNode
    share: ShareGrant
    at: float
    #: The node is a file the recipient put in a drop box a moment ago (a surface keeps that memory).
    own_upload: bool = False


@dataclass(frozen=True, slots=True)
class Operator:
    """The instance's operator at the command line (who holds the master key): ends any share; nothing
    else goes through this principal."""

    username: str  # "os:<system user>", as the audit log records it
    disabled: bool = False


AnyPrincipal = Principal | PluginPrincipal | SharePrincipal | Operator
Subject = Node | Organisation | Account | InstanceSubject | Shared | ShareGrant

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


def _plugin_actions(principal: PluginPrincipal, subject: Node | Organisation | InstanceSubject) -> frozenset[Action]:
    if isinstance(subject, InstanceSubject) or subject.org_id not in principal.org_ids:
        return frozenset()
    if isinstance(subject, Organisation):
        return frozenset({_A.LIST})
    granted = PLUGIN_ACCESS.get(principal.access, frozenset())
    if subject.group_id is not None and subject.parent_id is None:
        granted = granted - _NOT_ON_GROUP_ROOT
    return granted


_SHARE_MODES: dict[str, frozenset[Action]] = {
    "read": _READ_ONLY,
    "write": _CONTENT,
    "dropbox": frozenset({_A.CREATE}),
}


def _share_actions(principal: AnyPrincipal, shared: Shared) -> frozenset[Action] | None:
    """The actions a share gives ``principal`` on ``shared``; None when it is not the share's recipient
    (the node is then judged as itself)."""
    grant = shared.share
    if isinstance(principal, SharePrincipal):
        recipient = grant.recipient_user_id is None and principal.share.share_id == grant.share_id
    elif isinstance(principal, Principal):
        recipient = grant.recipient_user_id == principal.user_id and grant.org_id == principal.org_id
    else:
        recipient = False
    if not recipient:
        return None
    if not grant.live(shared.at) or shared.node.org_id != grant.org_id:  # the latter: a resolver's mistake
        return frozenset()
    granted = _SHARE_MODES.get(grant.mode, frozenset())
    node = shared.node
    if node.id == grant.root_id:
        granted = granted - {_A.DELETE} - ({_A.WRITE} if node.is_dir else frozenset())
        if grant.mode == "dropbox" and not node.is_dir:
            granted = frozenset()
    elif grant.mode == "dropbox":
        # What the drop box holds: nothing, except the file the recipient just sent, so that a client may
        # check its upload (rclone does); never a file of the owner's.
        granted = _READ_ONLY if shared.own_upload and not node.is_dir else frozenset()
    return granted


def _actions(principal: AnyPrincipal, subject: Subject) -> frozenset[Action]:
    if principal.disabled:
        return frozenset()
    if isinstance(principal, Operator):
        return frozenset({_A.ADMINISTER}) if isinstance(subject, ShareGrant) else frozenset()
    if isinstance(subject, ShareGrant):  # the share itself: its maker administers it
        if isinstance(principal, Principal) and (subject.owner_id, subject.org_id) == (
            principal.user_id,
            principal.org_id,
        ):
            return frozenset({_A.ADMINISTER})
        return frozenset()
    if isinstance(subject, Shared):
        through_share = _share_actions(principal, subject)
        if through_share is not None:
            return through_share
    target = subject.node if isinstance(subject, Shared) else subject
    if isinstance(principal, SharePrincipal):
        return frozenset()  # a link opens its share, nothing else
    if isinstance(principal, PluginPrincipal):
        return frozenset() if isinstance(target, Account) else _plugin_actions(principal, target)
    if isinstance(target, InstanceSubject):
        return frozenset({_A.LIST, _A.ADMINISTER}) if principal.role == ROLE_INSTANCE_ADMIN else frozenset()
    if isinstance(target, Account):
        if principal.role == ROLE_INSTANCE_ADMIN or (
            principal.role == ROLE_ORG_ADMIN
            and target.org_id == principal.org_id
            and target.role != ROLE_INSTANCE_ADMIN
        ):
            return frozenset({_A.ADMINISTER})
        return frozenset()
    if isinstance(target, Organisation):
        if principal.role == ROLE_INSTANCE_ADMIN or (
            principal.role == ROLE_ORG_ADMIN and target.org_id == principal.org_id
        ):
            return frozenset({_A.LIST, _A.ADMINISTER})
        return frozenset()
    if target.group_id is not None:
        return _group_actions(principal, target)
    if target.owner_id == principal.user_id and target.org_id == principal.org_id:
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
        who = principal.username if not isinstance(principal, Principal) else f"user {principal.user_id}"
        raise PolicyDenied(f"{action.value} denied to {who}")
