"""The access policy as a matrix: the expected table is written once, as data.

Rows are principals, columns are subjects; each cell lists the actions
allowed (every other action is denied).  Organisation 10 has alice (owner of
the private file), bob (member), olga (org admin), dora (disabled member);
organisation 20 has eve (member), ivan (instance admin) and zoe (org admin).
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
    Action,
    Organisation,
    PluginPrincipal,
    Principal,
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
}

OWNER = "LIST READ CREATE WRITE DELETE SHARE"
CONTENT = "LIST READ CREATE WRITE DELETE"
GROUP_ROOT = "LIST READ CREATE"
ADMIN_CONTENT = "LIST READ CREATE WRITE DELETE SHARE ADMINISTER"
ADMIN_ROOT = "LIST READ CREATE SHARE ADMINISTER"
ORG_ADMIN = "LIST ADMINISTER"
WRITER = "LIST READ CREATE WRITE"

# fmt: off
EXPECTED: dict[str, dict[str, str]] = {
    #         private file  private root  rw group file  rw group root  ro group file  ro group root  org 10     org 20
    "alice": {"alice's private file": OWNER, "alice's private root": OWNER,
              "rw group file": CONTENT, "rw group root": GROUP_ROOT,
              "ro group file": "LIST READ", "ro group root": "LIST READ"},
    "bob":   {"rw group file": CONTENT, "rw group root": GROUP_ROOT,
              "ro group file": "LIST READ", "ro group root": "LIST READ"},
    "olga":  {"rw group file": ADMIN_CONTENT, "rw group root": ADMIN_ROOT,
              "ro group file": ADMIN_CONTENT, "ro group root": ADMIN_ROOT,
              "organisation 10": ORG_ADMIN},
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
                      "organisation 10": "LIST"},
    "writer plugin": {"alice's private file": WRITER, "alice's private root": WRITER,
                      "rw group file": WRITER, "rw group root": "LIST READ CREATE",
                      "ro group file": WRITER, "ro group root": "LIST READ CREATE",
                      "organisation 10": "LIST"},
    "disabled plugin": {},
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


plugins = st.builds(
    PluginPrincipal,
    plugin=st.just("p"),
    org_ids=st.frozensets(st.integers(1, 3), max_size=3),
    access=st.sampled_from(["read", "read-write", "unknown"]),
    disabled=st.booleans(),
)


@given(plugins, st.one_of(nodes, st.builds(Organisation, st.integers(1, 3)), st.just(INSTANCE)))
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
