"""The access policy as a matrix: the expected table is written once, as data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.errors import PolicyDenied
from server.policy import Action, Principal, allows, require


@dataclass(frozen=True)
class Node:
    owner_id: int
    org_id: int


OWNER = Principal(user_id=1, username="alice", org_id=10, root_id=100)
COLLEAGUE = Principal(user_id=2, username="bob", org_id=10, root_id=200)
OUTSIDER = Principal(user_id=3, username="eve", org_id=20, root_id=300)
DISABLED_OWNER = Principal(user_id=1, username="alice", org_id=10, root_id=100, disabled=True)
ALICES_FILE = Node(owner_id=1, org_id=10)

ALL = ["LIST", "READ", "CREATE", "WRITE", "DELETE", "SHARE"]
NONE: list[str] = []

#: principal -> actions allowed on one of alice's files (everything else is denied)
EXPECTED = {
    "owner": ALL,
    "colleague": NONE,  # sharing comes with the sharing issue
    "outsider": NONE,
    "disabled owner": NONE,
}
PRINCIPALS = {"owner": OWNER, "colleague": COLLEAGUE, "outsider": OUTSIDER, "disabled owner": DISABLED_OWNER}


@pytest.mark.parametrize("who", list(PRINCIPALS))
@pytest.mark.parametrize("action", list(Action))
def test_policy_matrix(who: str, action: Action) -> None:
    expected = action.name in EXPECTED[who]
    assert allows(PRINCIPALS[who], ALICES_FILE, action) is expected


def test_administering_never_comes_with_ownership() -> None:
    assert not allows(OWNER, ALICES_FILE, Action.ADMINISTER)


def test_require_raises_without_naming_the_node() -> None:
    with pytest.raises(PolicyDenied) as info:
        require(OUTSIDER, ALICES_FILE, Action.READ)
    assert str(info.value) == "read denied to user 3"
