"""Invariants of the source itself: secrets are compared in constant time, and access to a share's details is
the policy's to decide.

The comparison rule is checked on the code, not hoped for: every ``==`` or ``!=`` in ``server``, ``webui`` and
``plugins`` between two values one of which is named like a secret (a token, a password, a digest, a code...)
must be one of the few listed below, each with the reason it is not a comparison of secrets.  Secrets are
compared with :func:`server.crypto.constant_time_equal` (or through a keyed digest looked up by a public
part, as link tokens and app passwords are).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"secret|token|password|passwd|digest|otp|hmac|_mac\b|code|key_check|hash", re.IGNORECASE)

#: (file, comparison as ast.unparse writes it) -> why it compares no secret.
NOT_SECRETS = {
    ("server/audit/_verify.py", "computed != digest"): "the audit chain's hashes: integrity, nothing to guess",
    ("server/audit/_verify.py", "row.prev_hash != expected_prev"): "the audit chain's hashes",
    ("server/audit/_verify.py", "row.hash != expect.hash"): "the audit chain's hashes",
    ("server/dav/locks.py", "locks_t.c.token == token"): "SQL; a lock token is shown by every PROPFIND",
    ("server/sharing/__init__.py", "shares_t.c.token_lookup == bindparam('lookup')"): "SQL, by the public part",
    ("server/sharing/__init__.py", "shares_t.c.token_lookup == secret.lookup"): "SQL, by the public part",
    ("webui/views/invite.py", "inst.credentials.redeem_token(token, 'invite') != user.id"): "user ids",
    ("webui/views/auth.py", "inst.credentials.redeem_token(token, 'reset') != user.id"): "user ids",
}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript | ast.Call):
        return _name(node.value if isinstance(node, ast.Subscript) else node.func)
    return None


def flagged(tree: ast.AST) -> list[str]:
    """The ``==`` and ``!=`` of ``tree`` between two values one of which is named like a secret."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        if any(isinstance(side, ast.Constant) for side in sides):
            continue  # against None, "" or a number: no secret's bytes are compared
        if any((name := _name(side)) and SECRET_NAME.search(name) for side in sides):
            out.append(ast.unparse(node))
    return out


def secret_comparisons() -> set[tuple[str, str]]:
    found = set()
    for package in ("server", "webui", "plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                tree = ast.parse(path.read_text(encoding="utf-8"))
                found.update((str(path.relative_to(ROOT)), text) for text in flagged(tree))
    return found


def test_secrets_are_compared_in_constant_time() -> None:
    found = secret_comparisons()
    unexplained = sorted(found - NOT_SECRETS.keys())
    assert not unexplained, f"compare these with server.crypto.constant_time_equal (or list why not): {unexplained}"
    stale = sorted(NOT_SECRETS.keys() - found)
    assert not stale, f"no longer in the code, remove from NOT_SECRETS: {stale}"


def test_the_scan_sees_a_plain_comparison_of_secrets() -> None:
    source = "if presented_token == stored_token:\n    pass\nif password != None:\n    pass\n"
    assert flagged(ast.parse(source)) == ["presented_token == stored_token"]


def test_no_page_decides_who_sees_a_share_by_itself() -> None:
    """The maker's pages and the API ask the policy (Shares.administered), never compare owners themselves."""
    for page in ("webui/views/shares.py", "webui/views/api.py"):
        source = (ROOT / page).read_text(encoding="utf-8")
        assert "owner_id !=" not in source and "owner_id ==" not in source, page
        assert "shares.administered(" in source, page
