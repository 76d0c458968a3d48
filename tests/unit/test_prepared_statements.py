"""Statements on the request path are prepared once, not compiled per request."""

from __future__ import annotations

import pytest
from sqlalchemy.sql import ClauseElement

import server.auth
import server.tree._tree

#: Module-level statements that are only templates for prepared ones.
TEMPLATES = {"_ENTRY"}


@pytest.mark.parametrize("module", [server.tree._tree, server.auth])
def test_module_level_statements_are_prepared(module: object) -> None:
    raw = [
        name
        for name, value in vars(module).items()
        if name.startswith("_") and name.isupper() and isinstance(value, ClauseElement) and name not in TEMPLATES
    ]
    assert raw == [], f"wrap these in server.db.prepared(): {raw}"
