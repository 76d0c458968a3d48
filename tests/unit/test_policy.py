"""The access policy as a matrix: the expected table is written once, as data.

Rows are principals, columns are subjects; each cell lists the actions
allowed (every other action is denied).  Organisation 10 has alice (owner of
the private file), bob (member), olga (org admin), dora (disabled member);
organisation 20 has eve (member), ivan (instance admin) and zoe (org admin).

Shares: alice shares her folder 11 (holding file 13) with bob read-only, with
olga read-write, as a drop box by link, and her file 12 read-write by link;
one share to bob has expired and one to dora was revoked; one to eve, of
another organisation, never counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import PolicyDenied
from server.policy import (
    INSTANCE,
    ROLE_INSTANCE_ADMIN,
    ROLE_MEMBER,
    ROLE_ORG_ADMIN,
    ROLES,
    Account,
    Action,
    Operator,
    Organisation,
    PluginPrincipal,
    Principal,
    Shared,
    ShareGrant,
    SharePrincipal,
    allows,
    require,
)


@dataclass(frozen=True)
class Node:
    owner_id: int
    org_id: int
    group_id: int | None = None
    group_access: str | None = None
    parent_id: int | None = 1
    id: int = 0
    is_dir: bool = False


NOW = 1_800_000_000.0
FOLDER = Node(owner_id=1, org_id=10, id=11, is_dir=True)
FILE_IN_FOLDER = Node(owner_id=1, org_id=10, parent_id=11, id=13)
FILE = Node(owner_id=1, org_id=10, id=12)


def grant(share_id: int, root: Node, mode: str, recipient: int | None, **kw: object) -> ShareGrant:
    return ShareGrant(share_id, root.id, 1, 10, mode, recipient, **kw)  # type: ignore[arg-type]


TO_BOB = grant(1, FOLDER, "read", 2)
TO_OLGA = grant(2, FOLDER, "write", 4)
DROP_BOX = grant(3, FOLDER, "dropbox", None)
FILE_LINK = grant(4, FILE, "write", None, expires_at=NOW + 1)
EXPIRED = grant(5, FOLDER, "write", 2, expires_at=NOW)
REVOKED = grant(6, FOLDER, "write", 5, revoked=True)
TO_EVE = grant(7, FOLDER, "write", 3)


PRINCIPALS = {
    "alice": Principal(user_id=1, username="alice", org_id=10, root_id=100),
    "bob": Principal(user_id=2, username="bob", org_id=10, root_id=200),
    "olga": Principal(user_id=4, username="olga", org_id=10, root_id=400, role=ROLE_ORG_ADMIN),
    "dora": Principal(user_id=5, username="dora", org_id=10, root_id=500, disabled=True),
    "eve": Principal(user_id=3, username="eve", org_id=20, root_id=300),
    "ivan": Principal(user_id=6, username="ivan", org_id=20, root_id=600, role=ROLE_INSTANCE_ADMIN),
    "zoe": Principal(user_id=7, username="zoe", org_id=20, root_id=700, role=ROLE_ORG_ADMIN),
    "reader plugin": PluginPrincipal("reader", frozenset({10})),
    "writer plugin": PluginPrincipal("writer", frozenset({10}), access="read-write"),
    "disabled plugin": PluginPrincipal("off", frozenset({10}), access="read-write", disabled=True),
    "drop box link": SharePrincipal(DROP_BOX),
    "file link": SharePrincipal(FILE_LINK),
    "disabled link": SharePrincipal(FILE_LINK, disabled=True),
}

SUBJECTS = {
    "alice's private file": Node(owner_id=1, org_id=10),
    "alice's private root": Node(owner_id=1, org_id=10, parent_id=None),
    "rw group file": Node(owner_id=2, org_id=10, group_id=1, group_access="rw"),
    "rw group root": Node(owner_id=4, org_id=10, group_id=1, group_access="rw", parent_id=None),
    "ro group file": Node(owner_id=4, org_id=10, group_id=2, group_access="ro"),
    "ro group root": Node(owner_id=4, org_id=10, group_id=2, group_access="ro", parent_id=None),
    "organisation 10": Organisation(10),
    "organisation 20": Organisation(20),
    "the instance": INSTANCE,
    "folder, shared to bob": Shared(FOLDER, TO_BOB, NOW),
    "file inside, shared to bob": Shared(FILE_IN_FOLDER, TO_BOB, NOW),
    "folder, shared to olga": Shared(FOLDER, TO_OLGA, NOW),
    "file inside, shared to olga": Shared(FILE_IN_FOLDER, TO_OLGA, NOW),
    "drop box": Shared(FOLDER, DROP_BOX, NOW),
    "file inside the drop box": Shared(FILE_IN_FOLDER, DROP_BOX, NOW),
    "file just sent to the drop box": Shared(FILE_IN_FOLDER, DROP_BOX, NOW, own_upload=True),
    "file, shared by link": Shared(FILE, FILE_LINK, NOW),
    "file inside, expired share to bob": Shared(FILE_IN_FOLDER, EXPIRED, NOW),
    "file inside, revoked share to dora": Shared(FILE_IN_FOLDER, REVOKED, NOW),
    "file inside, shared to eve": Shared(FILE_IN_FOLDER, TO_EVE, NOW),
}
SHARED = [name for name, subject in SUBJECTS.items() if isinstance(subject, Shared)]

OWNER = "LIST READ CREATE WRITE DELETE SHARE"
CONTENT = "LIST READ CREATE WRITE DELETE"
GROUP_ROOT = "LIST READ CREATE"
ADMIN_CONTENT = "LIST READ CREATE WRITE DELETE SHARE ADMINISTER"
ADMIN_ROOT = "LIST READ CREATE SHARE ADMINISTER"
ORG_ADMIN = "LIST ADMINISTER"
WRITER = "LIST READ CREATE WRITE"
# Through a share: the owner and everyone else as on the node itself (alice owns every shared node).
ALICE_SHARED = dict.fromkeys(SHARED, OWNER)

# fmt: off
EXPECTED: dict[str, dict[str, str]] = {
    #         private file  private root  rw group file  rw group root  ro group file  ro group root  org 10     org 20
    "alice": {"alice's private file": OWNER, "alice's private root": OWNER,
              "rw group file": CONTENT, "rw group root": GROUP_ROOT,
              "ro group file": "LIST READ", "ro group root": "LIST READ", **ALICE_SHARED},
    "bob":   {"rw group file": CONTENT, "rw group root": GROUP_ROOT,
              "ro group file": "LIST READ", "ro group root": "LIST READ",
              "folder, shared to bob": "LIST READ", "file inside, shared to bob": "LIST READ"},
    "olga":  {"rw group file": ADMIN_CONTENT, "rw group root": ADMIN_ROOT,
              "ro group file": ADMIN_CONTENT, "ro group root": ADMIN_ROOT,
              "organisation 10": ORG_ADMIN,
              # read-write: never deletes nor renames the shared folder itself, never shares further
              "folder, shared to olga": "LIST READ CREATE", "file inside, shared to olga": CONTENT},
    "dora":  {},
    "eve":   {},
    "ivan":  {"rw group file": "ADMINISTER", "rw group root": "ADMINISTER",
              "ro group file": "ADMINISTER", "ro group root": "ADMINISTER",
              "organisation 10": ORG_ADMIN, "organisation 20": ORG_ADMIN, "the instance": ORG_ADMIN},
    "zoe":   {"organisation 20": ORG_ADMIN},
    # Plugins: only in the organisations granted, never share/administer/delete, nothing on the instance.
    "reader plugin": {"alice's private file": "LIST READ", "alice's private root": "LIST READ",
                      "rw group file": "LIST READ", "rw group root": "LIST READ",
                      "ro group file": "LIST READ", "ro group root": "LIST READ",
                      "organisation 10": "LIST", **dict.fromkeys(SHARED, "LIST READ")},
    "writer plugin": {"alice's private file": WRITER, "alice's private root": WRITER,
                      "rw group file": WRITER, "rw group root": "LIST READ CREATE",
                      "ro group file": WRITER, "ro group root": "LIST READ CREATE",
                      "organisation 10": "LIST", **dict.fromkeys(SHARED, WRITER)},
    "disabled plugin": {},
    # A link opens its own share only: a drop box takes new files and shows nothing, not even inside.
    "drop box link": {"drop box": "CREATE", "file just sent to the drop box": "LIST READ"},
    "file link": {"file, shared by link": "LIST READ CREATE WRITE"},
    "disabled link": {},
}
# fmt: on


@pytest.mark.parametrize("who", list(PRINCIPALS))
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_policy_matrix(who: str, subject: str) -> None:
    expected = set(EXPECTED[who].get(subject, "").split())
    allowed = {action.name for action in Action if allows(PRINCIPALS[who], SUBJECTS[subject], action)}
    assert allowed == expected, (who, subject)


def test_require_raises_without_naming_the_node() -> None:
    with pytest.raises(PolicyDenied) as info:
        require(PRINCIPALS["eve"], SUBJECTS["alice's private file"], Action.READ)
    assert str(info.value) == "read denied to user 3"


# -- random trees and principals ------------------------------------------------

principals = st.builds(
    Principal,
    user_id=st.integers(1, 6),
    username=st.just("someone"),
    org_id=st.integers(1, 3),
    root_id=st.integers(100, 106),
    disabled=st.booleans(),
    role=st.sampled_from(ROLES),
)
nodes = st.builds(
    Node,
    owner_id=st.integers(1, 6),
    org_id=st.integers(1, 3),
    group_id=st.one_of(st.none(), st.integers(1, 3)),
    group_access=st.sampled_from(["rw", "ro"]),
    parent_id=st.one_of(st.none(), st.integers(1, 50)),
)


@given(principals, nodes)
def test_invariants_over_random_principals_and_nodes(principal: Principal, node: Node) -> None:
    granted = {action for action in Action if allows(principal, node, action)}
    if principal.disabled:
        assert not granted
    # Administering never implies reading.
    if Action.READ in granted:
        assert node.org_id == principal.org_id
        assert node.group_id is not None or node.owner_id == principal.user_id
    # Nobody reads another's private tree, whatever their role.
    if node.group_id is None and node.owner_id != principal.user_id:
        assert not granted
    # Whoever may change or remove something may also see it.
    if granted & {Action.WRITE, Action.DELETE, Action.CREATE, Action.SHARE}:
        assert {Action.LIST, Action.READ} <= granted
    # Group folders themselves are renamed or deleted by administration only.
    if node.group_id is not None and node.parent_id is None:
        assert not granted & {Action.WRITE, Action.DELETE}
    # A read-only group folder is read-only for members.
    if node.group_id is not None and node.group_access == "ro" and principal.role == ROLE_MEMBER:
        assert granted <= {Action.LIST, Action.READ}


@given(principals, st.integers(1, 3))
def test_organisation_administration(principal: Principal, org_id: int) -> None:
    granted = {action for action in Action if allows(principal, Organisation(org_id), action)}
    may = not principal.disabled and (
        principal.role == ROLE_INSTANCE_ADMIN or (principal.role == ROLE_ORG_ADMIN and principal.org_id == org_id)
    )
    assert granted == ({Action.LIST, Action.ADMINISTER} if may else set())


@given(principals, st.integers(1, 3), st.sampled_from(ROLES), st.integers(1, 5))
def test_account_administration(principal: Principal, org_id: int, role: str, user_id: int) -> None:
    """Instance admins change every account; organisation admins those of their organisation but an instance
    admin's; nobody else any."""
    granted = {action for action in Action if allows(principal, Account(user_id, org_id, role), action)}
    may = not principal.disabled and (
        principal.role == ROLE_INSTANCE_ADMIN
        or (principal.role == ROLE_ORG_ADMIN and principal.org_id == org_id and role != ROLE_INSTANCE_ADMIN)
    )
    assert granted == ({Action.ADMINISTER} if may else set())


plugins = st.builds(
    PluginPrincipal,
    plugin=st.just("p"),
    org_ids=st.frozensets(st.integers(1, 3), max_size=3),
    access=st.sampled_from(["read", "read-write", "unknown"]),
    disabled=st.booleans(),
)


@given(
    plugins,
    st.one_of(
        nodes,
        st.builds(Organisation, st.integers(1, 3)),
        st.builds(Account, st.integers(1, 3), st.integers(1, 3), st.sampled_from(ROLES)),
        st.just(INSTANCE),
    ),
)
def test_plugins_act_only_where_granted(principal: PluginPrincipal, subject: object) -> None:
    granted = {action for action in Action if allows(principal, subject, action)}  # type: ignore[arg-type]
    # Never share, delete or administer; nothing on the instance; nothing outside the organisations granted.
    assert not granted & {Action.SHARE, Action.DELETE, Action.ADMINISTER}
    if subject is INSTANCE or principal.disabled or principal.access == "unknown":
        assert granted <= ({Action.LIST} if isinstance(subject, Organisation) and not principal.disabled else set())
    elif getattr(subject, "org_id", None) not in principal.org_ids:
        assert not granted
    if principal.access == "read":
        assert granted <= {Action.LIST, Action.READ}


grants = st.builds(
    ShareGrant,
    share_id=st.integers(1, 3),
    root_id=st.integers(1, 3),
    owner_id=st.integers(1, 6),
    org_id=st.integers(1, 3),
    mode=st.sampled_from(["read", "write", "dropbox", "unknown"]),
    recipient_user_id=st.one_of(st.none(), st.integers(1, 6)),
    expires_at=st.one_of(st.none(), st.floats(NOW - 10, NOW + 10)),
    revoked=st.booleans(),
)
shared_nodes = st.builds(
    Node,
    owner_id=st.integers(1, 6),
    org_id=st.integers(1, 3),
    parent_id=st.one_of(st.none(), st.integers(1, 3)),
    id=st.integers(1, 3),
    is_dir=st.booleans(),
)


@given(st.one_of(principals, st.builds(SharePrincipal, grants, st.booleans())), shared_nodes, grants)
def test_what_a_share_gives_its_recipient_and_nobody_else(principal: object, node: Node, share: ShareGrant) -> None:
    shared = Shared(node, share, NOW)
    granted = {action for action in Action if allows(principal, shared, action)}  # type: ignore[arg-type]
    alone = {action for action in Action if allows(principal, node, action)}  # type: ignore[arg-type]
    if isinstance(principal, SharePrincipal):
        recipient = share.recipient_user_id is None and principal.share.share_id == share.share_id
        assert not alone  # a link opens nothing outside its share
    else:
        assert isinstance(principal, Principal)
        recipient = share.recipient_user_id == principal.user_id and share.org_id == principal.org_id
    if not recipient or principal.disabled:  # type: ignore[attr-defined]
        assert granted == alone  # the share changes nothing for anyone but its recipient
        return
    if not share.live(NOW):
        assert not granted
    assert not granted & {Action.SHARE, Action.ADMINISTER}  # a recipient never shares further
    if share.mode == "read":
        assert granted <= {Action.LIST, Action.READ}
    if share.mode == "dropbox":
        assert granted <= ({Action.CREATE} if node.id == share.root_id and node.is_dir else set())
        just_sent = Shared(node, share, NOW, own_upload=True)
        seen = {action for action in Action if allows(principal, just_sent, action)}  # type: ignore[arg-type]
        assert seen <= {Action.CREATE, Action.LIST, Action.READ}  # a file just sent is seen, never changed
    if node.id == share.root_id:
        assert Action.DELETE not in granted  # the shared item itself stays the owner's to delete


def test_a_share_is_administered_by_its_maker_only() -> None:
    for who, expected in (("alice", {Action.ADMINISTER}), ("bob", set()), ("olga", set()), ("ivan", set())):
        assert {a for a in Action if allows(PRINCIPALS[who], TO_BOB, a)} == expected, who
    disabled_alice = Principal(user_id=1, username="alice", org_id=10, root_id=100, disabled=True)
    moved_alice = Principal(user_id=1, username="alice", org_id=20, root_id=100)
    for principal in (disabled_alice, moved_alice, PRINCIPALS["drop box link"], PRINCIPALS["writer plugin"]):
        assert not any(allows(principal, DROP_BOX, a) for a in Action)


def test_the_operator_ends_shares_and_does_nothing_else() -> None:
    operator = Operator("os:root")
    assert {a for a in Action if allows(operator, TO_BOB, a)} == {Action.ADMINISTER}
    for subject in SUBJECTS.values():
        assert not any(allows(operator, subject, a) for a in Action)  # type: ignore[arg-type]


def test_a_share_gives_nothing_on_a_node_of_another_organisation() -> None:
    stray = Node(owner_id=3, org_id=20, parent_id=11, id=14)  # a resolver's mistake
    assert not any(allows(PRINCIPALS["bob"], Shared(stray, TO_BOB, NOW), a) for a in Action)
