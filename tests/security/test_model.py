"""WebDAV and sharing against a model: random sequences of operations by several principals on one real
server, and after every step, everyone sees exactly what the rules allow.

Principals: alice and bob, of one organisation; eve, of another; and whoever holds a link, over WebDAV at
``/public/<token>/`` (one principal per link made).  Operations: PUT, GET, PROPFIND Depth 1, MKCOL,
DELETE, MOVE and COPY (Overwrite T or F) through each principal's own surface, and through the JSON API
(``/api/v1/shares``) a colleague share (read or write), a link (read, write or drop box), a share of an
item by its id (a recipient sharing further, someone of another organisation), and revocation by anyone.

The model is a plain tree of nodes with the bytes last written, and the shares made, with this test's own
statement of the rules (DESIGN.md, Sharing; docs/sharing.md), never ``server.policy``'s: an owner does
anything in their private tree; a colleague's share shows at the root of the recipient's drive (under
``name (owner).ext`` when the name is taken there) and gives its mode below it (read: list and read;
write: also create, write and delete, never delete the shared item nor rename a shared folder); a link
gives its mode below the shared item; a drop box takes new files under a free name, and shows the
recipient only what they sent, under the name they sent it with, while it stays there unchanged; a
revoked share, or one whose item is gone, gives nothing from the next request.  A change is allowed when
the model says so, and then succeeds; otherwise it is refused (4xx, never 5xx), and the model stays as
it was.  After each step, for every principal: every folder it may list is listed with exactly the
model's names (and kinds, sizes and ETags: a file changed on the server and not in the model is caught
without reading it again), every file it may read returns exactly the bytes last written, and everything
it saw before and may not see now answers 404.  Each principal talks from an address of its own (the
test is the server's trusted proxy), as different people would.

Each example starts from fresh accounts (alice, bob and eve get new names and organisations), on one
server started for the whole test (about 70 s: 60 examples of up to 50 steps); Hypothesis runs
derandomized with no database, so a run in CI is the same every time.  Longer runs, random, hence new
sequences each time (``make fuzz``)::

    MEDDAV_MODEL_EXAMPLES=500 MEDDAV_MODEL_STEPS=60 .venv/bin/pytest tests/security/test_model.py --timeout=0

The tests after the model replay, one request sequence each, what it found.
"""

from __future__ import annotations

import itertools
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from server.db.models import jobs_t
from server.mail import MAIL_JOB
from server.testing import LiveServer, TestInstance

PASSWORD = "a long enough passphrase"
LINK_PASSWORD = "Tulipe ocre 2026!"
#: Few names, so that operations often meet: clashes, overwrites, a name shared twice.
NAMES = ("a.txt", "b.txt", "D", "E")
USERS = ("alice", "bob", "eve")
ALL = frozenset({"list", "read", "create", "write", "delete"})
MODES = {"read": frozenset({"list", "read"}), "write": ALL, "dropbox": frozenset({"create"})}
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>"
)

_LONG = "MEDDAV_MODEL_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("MEDDAV_MODEL_EXAMPLES", "60"))
STEPS = int(os.environ.get("MEDDAV_MODEL_STEPS", "50"))

Path = tuple[str, ...]


# -- the model ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """A file or folder of the model; a user's root has ``owner``."""

    name: str
    is_dir: bool
    content: bytes = b""
    owner: str | None = None
    parent: Node | None = None
    children: dict[str, Node] = field(default_factory=dict)
    version: int = 0  # bumped by every write of the content (the server's etag changes)
    alive: bool = True

    def root(self) -> Node:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def owned_by(self) -> str:
        owner = self.root().owner
        assert owner is not None
        return owner

    def subtree(self) -> Iterator[tuple[Path, Node]]:
        """This node and everything below it, by path relative to it (this node: ``()``)."""
        yield (), self
        for name, child in sorted(self.children.items()):
            for path, node in child.subtree():
                yield (name, *path), node

    def contains(self, other: Node) -> bool:
        """Whether ``other`` is this node or lies below it."""
        node: Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def clone(self) -> Node:
        copy = Node(self.name, self.is_dir, self.content)
        for name, child in self.children.items():
            attach(copy, name, child.clone())
        return copy


def attach(folder: Node, name: str, node: Node) -> Node:
    assert folder.is_dir and name not in folder.children
    node.name, node.parent = name, folder
    folder.children[name] = node
    return node


def remove(node: Node) -> None:
    """Delete a node and everything below it (its shares go with it)."""
    assert node.parent is not None
    del node.parent.children[node.name]
    node.parent = None
    for _, gone in node.subtree():
        gone.alive = False


@dataclass(eq=False)
class Share:
    id: int
    node_id: int  # the server's, for the API
    node: Node
    maker: str
    mode: str
    recipient: str | None  # a colleague; None: a link
    token: str | None = None
    holder: str = ""  # the principal holding a link (the server may give a dead share's id again)
    revoked: bool = False
    #: A drop box's uploads, by the name sent: the node stored and its version then.
    sent: dict[str, tuple[Node, int]] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return not self.revoked and self.node.alive


Ref = tuple[Node, Share | None]  # a node, and the share it is reached through (None: one's own tree)


class Listing(dict[str, tuple[bool, int]]):
    """A folder's members as listed: name -> (is a folder, size); and the files' ETags, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.etags: dict[str, str] = {}


def split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, else ``name (2).ext``, ``name (3).ext``...: the first not taken (docs/sharing.md)."""
    stem, ext = split_ext(name)
    candidate, number = name, 1
    while taken(candidate):
        number += 1
        candidate = f"{stem} ({number}){ext}"
    return candidate


def rights(ref: Ref) -> frozenset[str]:
    """What the principal whose view holds ``ref`` may do there (the rules of docs/sharing.md)."""
    node, share = ref
    if share is None:
        return ALL  # a user's own tree: a view holds nobody else's node directly
    if not share.live:
        return frozenset()
    granted = MODES[share.mode]
    if node is share.node:
        granted -= {"delete"} | ({"write"} if node.is_dir else set())
    elif share.mode == "dropbox":
        granted = frozenset({"list", "read"})  # in the view: one of the recipient's own uploads
    return granted


@dataclass
class Plan:
    """What the model expects of a request: success (then ``apply`` it), or a refusal (``refusal``: the
    statuses allowed, None: any 4xx)."""

    ok: bool
    apply: Callable[[httpx.Response], None] = lambda response: None
    refusal: frozenset[int] | None = None


def refused(*statuses: int) -> Plan:
    return Plan(False, refusal=frozenset(statuses) if statuses else None)


# -- the server ----------------------------------------------------------------------------------------


@dataclass
class World:
    """The one server of a test run, shared by the examples (each with fresh accounts)."""

    server: LiveServer
    counter: Iterator[int] = field(default_factory=itertools.count)


class SharingModel(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        n = self.number = next(self.world.counter)
        accounts = self.world.server.instance.accounts
        orgs = {
            "A": accounts.create_organisation(f"Cabinet model {n}"),
            "B": accounts.create_organisation(f"Clinique {n}"),
        }
        self.org = {"alice": "A", "bob": "A", "eve": "B"}
        self.username = {who: f"{who}{n:05d}" for who in USERS}  # one width: the same sort order
        self.roots: dict[str, Node] = {}
        for who in USERS:
            accounts.create_user(self.username[who], PASSWORD, org_id=orgs[self.org[who]])
            self.roots[who] = Node("", is_dir=True, owner=who)
        self.shares: list[Share] = []
        self.seen: dict[str, set[Path]] = {}
        self.etags: dict[Node, tuple[int, str]] = {}  # a file's version when last read, and its ETag then
        self.clients: dict[str, httpx.Client] = {}
        self.writes = itertools.count(1)

    def teardown(self) -> None:
        for client in self.clients.values():
            client.close()

    # -- views: what a principal reaches, by path -------------------------------------------------------

    def principals(self) -> list[str]:
        return [*USERS, *(s.holder for s in self.shares if s.recipient is None)]

    def link(self, who: str) -> Share | None:
        return next((s for s in self.shares if s.holder == who), None)

    def view(self, who: str) -> dict[Path, Ref]:
        share = self.link(who)
        if share is not None:
            return self.link_view(share)
        root = self.roots[who]
        found: dict[Path, Ref] = {path: (node, None) for path, node in root.subtree()}
        taken = set(root.children)
        for share in self.shares:  # in the order they were made (ids ascending)
            if share.recipient != who or not share.live:
                continue
            name = share.node.name
            if name in taken:  # named after its owner, never hiding nor hidden
                stem, ext = split_ext(name)
                name = free_name(f"{stem} ({self.username[share.maker]}){ext}", taken.__contains__)
            taken.add(name)
            found.update(((name, *path), (node, share)) for path, node in share.node.subtree())
        return found

    def link_view(self, share: Share) -> dict[Path, Ref]:
        if not share.live:
            return {}
        if share.mode != "dropbox":
            return {path: (node, share) for path, node in share.node.subtree()}
        found: dict[Path, Ref] = {(): (share.node, share)}
        for name, (node, version) in share.sent.items():
            if node.alive and node.parent is share.node and node.version == version:
                found[(name,)] = (node, share)
        return found

    @staticmethod
    def listing(view: dict[Path, Ref], folder: Path) -> dict[str, tuple[bool, int]]:
        """name -> (is a folder, size) of what ``view`` shows in ``folder``."""
        depth = len(folder)
        return {
            path[-1]: (node.is_dir, len(node.content))
            for path, (node, _) in view.items()
            if len(path) == depth + 1 and path[:depth] == folder
        }

    # -- talking to the server ------------------------------------------------------------------------

    def base(self, who: str) -> str:
        share = self.link(who)
        if share is None:
            return self.world.server.dav_url
        return f"{self.world.server.url}/public/{share.token}/"

    def url(self, who: str, path: Path) -> str:
        return self.base(who) + "/".join(quote(name, safe="") for name in path)

    def client(self, who: str) -> httpx.Client:
        """The principal's HTTP client, from an address of its own (the server trusts this test as its
        proxy): link holders are different people, and a server counts a dead link's misses per address."""
        client = self.clients.get(who)
        if client is None:
            auth = ("anyone", LINK_PASSWORD) if self.link(who) is not None else (self.username[who], PASSWORD)
            n, k = self.number, len(self.clients) + 1
            address = f"10.{n >> 8 & 255}.{n & 255}.{k}"
            client = self.clients[who] = httpx.Client(auth=auth, timeout=20, headers={"X-Forwarded-For": address})
        return client

    def api(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client(who).request(method, f"{self.world.server.url}/api/v1{path}", **kwargs)

    @staticmethod
    def check(response: httpx.Response, plan: Plan, what: str) -> None:
        status = response.status_code
        detail = f"{what}: {status} {response.text[:300]!r}"
        assert status < 500, f"server error, {detail}"
        if plan.ok:
            assert 200 <= status < 300, f"allowed by the model, refused by the server: {detail}"
        else:
            assert 400 <= status < 500, f"refused by the model, done by the server: {detail}"
            assert plan.refusal is None or status in plan.refusal, f"expected one of {sorted(plan.refusal)}: {detail}"

    def run(self, who: str, plan: Plan, method: str, path: Path, what: str, **kwargs: Any) -> httpx.Response:
        response = self.client(who).request(method, self.url(who, path), **kwargs)
        self.check(response, plan, f"{who} {method} /{'/'.join(path)} {what}".rstrip())
        if plan.ok:
            plan.apply(response)
        return response

    def propfind(self, who: str, path: Path) -> Listing | None:
        """What the server lists in ``path`` for ``who`` (Depth 1), or None when it answers 404."""
        response = self.client(who).request(
            "PROPFIND", self.url(who, path), headers={"Depth": "1"}, content=PROPFIND_BODY
        )
        if response.status_code in self.absent(who):
            return None
        assert response.status_code == 207, f"{who} PROPFIND /{'/'.join(path)}: {response.status_code}"
        own = unquote(urlsplit(self.url(who, path)).path).rstrip("/")
        listed = Listing()
        found_self = False
        for item in ET.fromstring(response.content).findall("{DAV:}response"):
            href = unquote(urlsplit(item.findtext("{DAV:}href") or "").path).rstrip("/")
            if href == own:
                found_self = True
                continue
            parent, _, name = href.rpartition("/")
            assert parent == own, f"{who} PROPFIND /{'/'.join(path)} lists {href!r}, outside the folder"
            is_dir = item.find(".//{DAV:}resourcetype/{DAV:}collection") is not None
            listed[name] = (is_dir, int(item.findtext(".//{DAV:}getcontentlength") or 0))
            listed.etags[name] = (item.findtext(".//{DAV:}getetag") or "").strip('"')
        assert found_self, f"{who} PROPFIND /{'/'.join(path)} does not list the folder itself"
        return listed

    # -- expectations of the model ------------------------------------------------------------------------

    def dead_link(self, who: str) -> bool:
        share = self.link(who)
        return share is not None and not share.live

    def absent(self, who: str) -> tuple[int, ...]:
        """The answers of what ``who`` does not reach: 404; from a dead link asked too often, 429 too (the
        server throttles misses of link tokens per address, as it does a scan for them)."""
        return (404, 429) if self.dead_link(who) else (404,)

    def dropbox(self, who: str) -> Share | None:
        share = self.link(who)
        return share if share is not None and share.mode == "dropbox" else None

    def plan_put(self, who: str, path: Path, body: bytes) -> Plan:
        if self.dead_link(who):
            return refused(*self.absent(who))
        box = self.dropbox(who)
        if box is not None:
            if len(path) != 1:
                return refused()
            folder = box.node

            def drop(_: httpx.Response) -> None:
                stored = attach(folder, free_name(path[0], folder.children.__contains__), Node("", False, body))
                box.sent[path[0]] = (stored, stored.version)

            return Plan(True, drop)
        view = self.view(who)
        ref = view.get(path)
        if ref is not None:
            node = ref[0]
            if node.is_dir or "write" not in rights(ref):
                return refused()

            def write(_: httpx.Response) -> None:
                node.content, node.version = body, node.version + 1

            return Plan(True, write)
        parent = view.get(path[:-1]) if path else None
        if parent is None or not parent[0].is_dir or "create" not in rights(parent):
            return refused()

        def create(_: httpx.Response) -> None:
            attach(parent[0], path[-1], Node("", False, body))

        return Plan(True, create)

    def plan_mkcol(self, who: str, path: Path) -> Plan:
        if self.dead_link(who):
            return refused(*self.absent(who))
        if self.dropbox(who) is not None:
            return refused(403)
        view = self.view(who)
        parent = view.get(path[:-1]) if path else None
        if path in view or parent is None or not parent[0].is_dir or "create" not in rights(parent):
            return refused()

        def make(_: httpx.Response) -> None:
            attach(parent[0], path[-1], Node("", True))

        return Plan(True, make)

    def plan_delete(self, who: str, path: Path) -> Plan:
        if self.dead_link(who) or self.dropbox(who) is not None:
            return refused(*self.absent(who))  # a drop box answers DELETE 404, whether the name exists or not
        ref = self.view(who).get(path)
        if ref is None:
            return refused(404)
        node = ref[0]
        if node.parent is None or "delete" not in rights(ref):
            return refused()
        return Plan(True, lambda _: remove(node))

    def plan_transfer(self, who: str, source: Path, target: Path, *, move: bool, overwrite: bool) -> Plan:
        if self.dead_link(who) or self.dropbox(who) is not None:
            return refused(*self.absent(who))  # a drop box answers COPY and MOVE 404
        view = self.view(who)
        src = view.get(source)
        if src is None:
            return refused(404)
        parent = view.get(target[:-1]) if target else None
        if parent is None or not parent[0].is_dir or target[: len(source)] == source:
            return refused()
        existing = view.get(target)
        if existing is not None and not overwrite:
            return refused(412)
        node, folder = src[0], parent[0]
        if (
            ("delete" if move else "read") not in rights(src)
            or "create" not in rights(parent)
            or (existing is not None and "delete" not in rights(existing))
        ):
            return refused()
        if (move and node.parent is None) or (node.is_dir and node.contains(folder)):
            return refused()
        replaced = existing[0] if existing is not None else None
        if replaced is not None and replaced is not node and replaced.contains(node):
            return refused()  # the destination is never an ancestor of what is moved or copied

        def apply(_: httpx.Response) -> None:
            moving = node if move else node.clone()  # the copy is of the source as it was
            if replaced is moving:
                return
            if replaced is not None:
                remove(replaced)
            if move:
                assert moving.parent is not None
                del moving.parent.children[moving.name]
            attach(folder, target[-1], moving)

        return Plan(True, apply)

    def plan_share(self, maker: str, path: Path, *, colleague: str | None, mode: str) -> Plan:
        own = dict(self.roots[maker].subtree())  # the API takes a path of one's own tree
        node = own.get(path)
        if node is None:
            return refused(404)
        if node.parent is None or (mode == "dropbox" and not node.is_dir):
            return refused(400)
        if colleague is not None:
            if self.org[colleague] != self.org[maker]:
                return refused(404)
            if colleague == maker or mode == "dropbox":
                return refused(400)

        def made(response: httpx.Response) -> None:
            body = response.json()
            token = body["link"].rsplit("/", 1)[1] if colleague is None else None
            info = body["share"]
            holder = f"link{len(self.shares)}" if colleague is None else ""
            self.shares.append(Share(info["id"], info["node_id"], node, maker, mode, colleague, token, holder))

        return Plan(True, made)

    def may_end(self, who: str, share: Share) -> bool:
        """Its maker, or whoever may share its item (the item's owner), ends a share."""
        return share.node.alive and (who == share.maker or share.node.owned_by() == who)

    # -- the operations -----------------------------------------------------------------------------------

    def draw_principal(self, data: st.DataObject) -> str:
        """Anyone; a link's holder twice as often as a user (links have the most rules of their own)."""
        links = self.principals()[len(USERS) :]
        return data.draw(st.sampled_from([*USERS, *links, *links]), label="principal")

    def paths(self, who: str) -> st.SearchStrategy[Path]:
        """Mostly a path of the principal's view (its root last: rarely chosen) or a new name in one of its
        folders; else a path only someone else reaches."""
        view = self.view(who)
        known = sorted(view, key=lambda path: (not path, path)) or [()]
        folders = [path for path in known if path not in view or view[path][0].is_dir] or known
        others = sorted({p for w in self.principals() for p in self.view(w)} - set(known))
        existing = st.sampled_from(known)
        new = st.tuples(st.sampled_from(folders), st.sampled_from(NAMES)).map(lambda pair: (*pair[0], pair[1]))
        return st.one_of(existing, existing, new, new, *([st.sampled_from(others)] if others else []))

    def draw_path(self, data: st.DataObject, who: str, *, label: str) -> Path:
        path: Path = data.draw(self.paths(who), label=label)
        return path

    def body(self, data: st.DataObject) -> bytes:
        return b"w%d:" % next(self.writes) + data.draw(st.binary(max_size=16), label="bytes")

    @initialize(
        colleague=st.sampled_from((None, "read", "write")),
        link=st.sampled_from((None, "read", "write", "dropbox")),
        linked=st.sampled_from((("D",), ("b.txt",))),
    )
    def seed(self, colleague: str | None, link: str | None, linked: Path) -> None:
        """A few items from the start: alice's D/a.txt and b.txt, bob's E/ and a.txt, eve's a.txt; alice's D
        shared with bob, and D or b.txt by a link, in some mode or not."""
        for who, path, is_dir in (
            ("alice", ("D",), True),
            ("alice", ("D", "a.txt"), False),
            ("alice", ("b.txt",), False),
            ("bob", ("E",), True),
            ("bob", ("a.txt",), False),
            ("eve", ("a.txt",), False),
        ):
            if is_dir:
                self.run(who, self.plan_mkcol(who, path), "MKCOL", path, "(seed)")
            else:
                body = f"{who}'s {'/'.join(path)}".encode()
                self.run(who, self.plan_put(who, path, body), "PUT", path, "(seed)", content=body)
        if colleague is not None:
            self.share("alice", ("D",), colleague="bob", mode=colleague)
        if link is not None:
            self.share("alice", linked, colleague=None, mode=link)

    @rule(data=st.data())
    def put(self, data: st.DataObject) -> None:
        who = self.draw_principal(data)
        path = self.draw_path(data, who, label="path")
        body = self.body(data)
        self.run(who, self.plan_put(who, path, body), "PUT", path, "", content=body)

    @rule(data=st.data())
    def mkcol(self, data: st.DataObject) -> None:
        who = self.draw_principal(data)
        path = self.draw_path(data, who, label="path")
        self.run(who, self.plan_mkcol(who, path), "MKCOL", path, "")

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        who = self.draw_principal(data)
        path = self.draw_path(data, who, label="path")
        self.run(who, self.plan_delete(who, path), "DELETE", path, "")

    @rule(data=st.data(), move=st.booleans(), overwrite=st.booleans())
    def transfer(self, data: st.DataObject, move: bool, overwrite: bool) -> None:
        who = self.draw_principal(data)
        source = self.draw_path(data, who, label="source")
        target = self.draw_path(data, who, label="target")
        plan = self.plan_transfer(who, source, target, move=move, overwrite=overwrite)
        headers = {"Destination": self.url(who, target), "Overwrite": "T" if overwrite else "F"}
        method = "MOVE" if move else "COPY"
        self.run(who, plan, method, source, f"-> /{'/'.join(target)} overwrite={overwrite}", headers=headers)

    @rule(data=st.data())
    def probe(self, data: st.DataObject) -> None:
        """GET and PROPFIND of any path, someone else's included: exactly the model's bytes or names, or 404."""
        who = self.draw_principal(data)
        path = self.draw_path(data, who, label="path")
        self.expect_seen(who, path, self.view(who))

    def draw_item(self, data: st.DataObject, maker: str) -> Path:
        """Mostly an item of the maker's own tree; else any path (refused: the root, someone else's...)."""
        own = [path for path, _ in self.roots[maker].subtree() if path]
        choices = [st.sampled_from(own)] * 3 if own else []
        path: Path = data.draw(st.one_of(*choices, self.paths(maker)), label="item")
        return path

    def share(self, maker: str, path: Path, *, colleague: str | None, mode: str) -> None:
        plan = self.plan_share(maker, path, colleague=colleague, mode=mode)
        body: dict[str, Any] = {"path": "/".join(path), "mode": mode}
        if colleague is None:
            body |= {"email": "patient@example.org", "password": LINK_PASSWORD}
        else:
            body["colleague"] = self.username[colleague]
        response = self.api(maker, "POST", "/shares", json=body)
        self.check(response, plan, f"{maker} shares /{'/'.join(path)} {body}")
        if plan.ok:
            plan.apply(response)

    @rule(data=st.data(), mode=st.sampled_from(("write", "read", "dropbox")))
    def share_with_colleague(self, data: st.DataObject, mode: str) -> None:
        maker = data.draw(st.sampled_from(USERS), label="maker")
        path = self.draw_item(data, maker)
        # The colleague of the same organisation first; then one of another organisation, then oneself.
        candidates = sorted(USERS, key=lambda u: (u == maker, self.org[u] != self.org[maker]))
        colleague = data.draw(st.sampled_from(candidates), label="colleague")
        self.share(maker, path, colleague=colleague, mode=mode)

    @rule(data=st.data(), mode=st.sampled_from(("read", "write", "dropbox")))
    def share_by_link(self, data: st.DataObject, mode: str) -> None:
        maker = data.draw(st.sampled_from(USERS), label="maker")
        self.share(maker, self.draw_item(data, maker), colleague=None, mode=mode)

    @precondition(lambda self: any(s.node.alive for s in self.shares))
    @rule(data=st.data())
    def share_by_id(self, data: st.DataObject) -> None:
        """Sharing an item by its id: only its owner may (not a recipient, not another organisation)."""
        alive = [s for s in self.shares if s.node.alive]  # the ids of deleted nodes may be given again
        shared = data.draw(st.sampled_from(alive), label="share")
        who = data.draw(st.sampled_from(USERS), label="who")
        mine = next((path for path, node in self.roots[who].subtree() if node is shared.node), None)
        plan = refused(404) if mine is None else self.plan_share(who, mine, colleague=None, mode="read")
        body = {"node_id": shared.node_id, "email": "patient@example.org", "password": LINK_PASSWORD}
        response = self.api(who, "POST", "/shares", json=body)
        self.check(response, plan, f"{who} shares node {shared.node_id} of share {shared.id}")
        if plan.ok:
            plan.apply(response)

    @precondition(lambda self: self.shares)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        """Ending a share: its maker, or its item's owner; anyone else gets 404, as for no share at all."""
        drawn = data.draw(st.sampled_from(self.shares), label="share")
        who = data.draw(st.sampled_from(USERS), label="who")
        # The server gives the id of a share deleted with its item to the next share made: the id now
        # names that one.
        share = [s for s in self.shares if s.id == drawn.id][-1]
        plan = Plan(True, lambda _: setattr(share, "revoked", True)) if self.may_end(who, share) else refused(404)
        response = self.api(who, "DELETE", f"/shares/{share.id}")
        self.check(response, plan, f"{who} revokes share {share.id}")
        if plan.ok:
            plan.apply(response)

    # -- after every step ------------------------------------------------------------------------------

    def expect_seen(self, who: str, path: Path, view: dict[Path, Ref]) -> None:
        """What ``who`` gets at ``path``: a listing or bytes exactly as the model's, or 404."""
        ref = view.get(path)
        where = f"{who} at /{'/'.join(path)}"
        if ref is None:
            response = self.client(who).get(self.url(who, path))
            assert response.status_code in self.absent(who), f"{where}: not in the model, yet {response.status_code}"
            assert self.propfind(who, path) is None, f"{where}: not in the model, yet listed"
        elif ref[0].is_dir:
            assert self.propfind(who, path) == self.listing(view, path), where
        else:
            response = self.client(who).get(self.url(who, path))
            assert response.status_code == 200, f"{where}: {response.status_code}"
            assert response.content == ref[0].content, f"{where}: not the bytes last written"
            assert self.propfind(who, path) == {}, f"{where}: a file lists no member"

    def read(self, who: str, path: Path, node: Node, etag: str | None) -> None:
        """A file ``who`` may read: the bytes last written.  Read again only when the model wrote it since
        it was last read (by anyone, as a node has one content); else its ETag must not have changed."""
        known = self.etags.get(node)
        where = f"{who} reads /{'/'.join(path)}"
        if etag is not None and known is not None and known[0] == node.version:
            assert etag == known[1], f"{where}: changed on the server, not in the model"
            return
        response = self.client(who).get(self.url(who, path))
        assert (response.status_code, response.content) == (200, node.content), f"{where}: {response.status_code}"
        if etag is not None:
            self.etags[node] = (node.version, etag)

    @invariant()
    def everyone_sees_exactly_the_model(self) -> None:
        """Every principal lists every folder it may list with exactly the model's names (and kinds, sizes),
        reads every file it may read with exactly the bytes last written; what left its view answers 404."""
        for who in self.principals():
            view = self.view(who)
            listed: dict[Path, str] = {}  # file -> ETag, from its folder's listing
            for path, (node, _) in sorted(view.items()):
                if node.is_dir:
                    listing = self.propfind(who, path)
                    assert listing == self.listing(view, path), f"{who} lists /{'/'.join(path)}"
                    listed.update(((*path, name), etag) for name, etag in listing.etags.items())
            for path, (node, _) in sorted(view.items()):
                if not node.is_dir:
                    self.read(who, path, node, listed.get(path))
            for path in sorted(self.seen.get(who, set()) - set(view)):
                response = self.client(who).get(self.url(who, path))
                assert response.status_code in self.absent(who), (
                    f"{who} still reaches /{'/'.join(path)}: {response.status_code}"
                )
            self.seen[who] = set(view)


@pytest.fixture
def world(make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]) -> World:
    return World(start_server(make_test_instance({"server": {"trusted_proxies": ["127.0.0.1/32"]}})))


def test_everyone_sees_and_changes_exactly_what_the_sharing_rules_allow(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)  # thousands of requests: their INFO lines would cost more than they do
    SharingModel.world = world
    run_state_machine_as_test(
        SharingModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not _LONG,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# -- what the model found, one request sequence each ----------------------------------------------------


@pytest.fixture
def office(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[tuple[LiveServer, httpx.Client, httpx.Client]]:
    """A server with alice and bob, of one organisation, each with an HTTP client (WebDAV and the API)."""
    server = start_server(make_test_instance())
    clients = []
    for name in ("alice", "bob"):
        server.instance.accounts.create_user(name, PASSWORD)
        clients.append(httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=20))
    yield server, clients[0], clients[1]
    for client in clients:
        client.close()


def make_link(client: httpx.Client, path: str, password: str, mode: str = "read") -> tuple[int, str]:
    """A link on ``path`` through the JSON API: its share id and token."""
    made = client.post("/api/v1/shares", json={"path": path, "email": "p@example.org", "password": password,
                                                "mode": mode})  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()["share"]["id"], made.json()["link"].rsplit("/", 1)[1]


def test_a_read_write_link_to_a_file_takes_a_new_version_over_webdav(
    office: tuple[LiveServer, httpx.Client, httpx.Client],
) -> None:
    """docs/sharing.md: a read-write share of a file allows writing it.  Over WebDAV the link's URL is the
    file itself, whose parent is no folder of the link: PUT answered 409 "PUT parent must be a collection"."""
    server, alice, _ = office
    assert alice.put("/dav/ordonnance.pdf", content=b"v1").status_code == 201
    _, token = make_link(alice, "ordonnance.pdf", LINK_PASSWORD, mode="write")
    with httpx.Client(auth=("anyone", LINK_PASSWORD), timeout=20) as link:
        url = f"{server.url}/public/{token}"
        assert link.get(url).content == b"v1"
        written = link.put(url, content=b"v2")
        assert written.status_code == 204, (written.status_code, written.text[:200])
        assert link.get(url).content == b"v2"
    assert alice.get("/dav/ordonnance.pdf").content == b"v2"


@pytest.fixture
def share_of_an_ended_share(office: tuple[LiveServer, httpx.Client, httpx.Client]) -> dict[str, Any]:
    """alice's link on X is opened (its password verified), then X is deleted, which deletes the share;
    bob then makes a link on his Y, with a password of his own.  The database gave bob's share the id of
    alice's (SQLite reuses the greatest rowid once its row is gone): the tests below show what bob's share
    inherited through that id."""
    server, alice, bob = office
    assert alice.request("MKCOL", "/dav/X").status_code == 201
    old_id, old_token = make_link(alice, "X", LINK_PASSWORD)
    with httpx.Client(auth=("anyone", LINK_PASSWORD), timeout=20) as link:
        assert link.request("PROPFIND", f"{server.url}/public/{old_token}/", headers={"Depth": "1"}).status_code == 207
    assert server.instance.flush_audit()  # the link's visit is recorded before its share ends
    assert alice.delete("/dav/X").status_code == 204
    assert bob.request("MKCOL", "/dav/Y").status_code == 201
    new_id, new_token = make_link(bob, "Y", "Un autre mot de passe 77!")
    return {"server": server, "old_id": old_id, "new_id": new_id, "new_token": new_token}


def test_a_new_link_does_not_open_with_the_password_of_an_ended_one(share_of_an_ended_share: dict[str, Any]) -> None:
    server, token = share_of_an_ended_share["server"], share_of_an_ended_share["new_token"]
    with httpx.Client(auth=("anyone", LINK_PASSWORD), timeout=20) as link:  # alice's link's password, not bob's
        answer = link.request("PROPFIND", f"{server.url}/public/{token}/", headers={"Depth": "1"})
    assert answer.status_code == 401, (
        f"bob's link opened with the password of alice's ended link ({answer.status_code})"
    )


def test_a_new_links_mails_are_queued_whatever_ended_before(share_of_an_ended_share: dict[str, Any]) -> None:
    server = share_of_an_ended_share["server"]
    with server.instance.db.read() as tx:
        keys = [row.key for row in tx.all(select(jobs_t.c.key).where(jobs_t.c.kind == MAIL_JOB))]
    assert len(keys) == 4, f"two links, two mails each (the link, the password); queued: {keys}"


def test_a_new_share_shows_its_owner_no_visit_of_another_share(share_of_an_ended_share: dict[str, Any]) -> None:
    instance = share_of_an_ended_share["server"].instance
    assert instance.flush_audit()
    shares = instance.shares
    visits = shares.accesses(shares.get(share_of_an_ended_share["new_id"]))
    assert visits == [], f"bob's new link, never opened, shows the visits of alice's: {visits}"
