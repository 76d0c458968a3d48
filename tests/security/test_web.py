"""The web pages under attack: names carrying markup, redirects, forged posts, fixed sessions, guessing.

- a file or folder name carrying HTML or script is shown escaped on every page that shows names (the
  owner's files, the share dialog and overview, the recipient's listing and drop box);
- no redirect leaves the site, whatever ``next``, a path or a header says;
- every change needs the session's CSRF token (forms and the recipient's uploads), and a token of
  another session does not do;
- a session cookie brought by the browser is never adopted at login (fixation);
- guessing link tokens and link passwords is throttled to 429, on the pages and over WebDAV;
- every response carries the security headers; cookies are Secure and HSTS is sent when browsers
  reach the server over HTTPS (its own TLS or a proxy the public URL names).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import httpx
import pytest

from server.testing import LiveServer, TestInstance
from tests.security.conftest import LINK_PASSWORD, PASSWORD, Clinic
from tests.web.conftest import Web, csrf_of

HOSTILE_NAMES = [
    "<script>alert(1)<\u2215script>.pdf",  # a name holds no "/": U+2215 looks like one
    '"><img src=x onerror=alert(2)>.pdf',
    "javascript:alert(3).pdf",
    "{{7*7}}${7*7}.pdf",
]


@pytest.fixture
def web(clinic: Clinic) -> Iterator[Callable[..., Web]]:
    made: list[Web] = []

    def make(user: str | None = None) -> Web:
        client = Web(base_url=clinic.url, timeout=30)
        made.append(client)
        if user is not None:
            assert client.login(user, PASSWORD).status_code == 303
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def hostile_files(clinic: Clinic) -> Iterator[list[str]]:
    """Files with hostile names in alice's shared folder "Commun" (a link and bob see them)."""
    alice = clinic["alice"]
    for name in HOSTILE_NAMES:
        assert alice.put(f"Commun/{quote(name)}", content=b"x").status_code == 201
    yield HOSTILE_NAMES
    for name in HOSTILE_NAMES:
        alice.delete(f"Commun/{quote(name)}")


class _Markup(HTMLParser):
    """The elements and attributes a page really has (not what its text or URLs mention)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_escaped(html: str, names: list[str]) -> None:
    """No name became markup: no handler attribute, no inline script, no element a name brought."""
    parser = _Markup()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in ("img", "svg", "iframe"), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        urls = [attrs.get(name) or "" for name in ("href", "src", "action", "formaction")]
        assert not any(url.lstrip().lower().startswith("javascript:") for url in urls), attrs
    assert "<script>alert" not in html
    for name in names:
        assert name not in html or ("<" not in name and '"' not in name), name


def test_hostile_names_are_shown_escaped_on_every_page(
    clinic: Clinic, web: Callable[..., Web], hostile_files: list[str]
) -> None:
    alice, bob = web("alice"), web("bob")
    overview = alice.get("/ui/shares")
    assert overview.status_code == 200
    assert_escaped(overview.text, hostile_files)  # it names shared items, none of these
    pages = [
        alice.get("/ui/files/Commun").text,
        bob.get("/ui/files/Commun").text,
        alice.get(f"/ui/share/Commun/{quote(hostile_files[0])}").text,
    ]
    guest = web()
    token = clinic.links["write"]
    assert guest.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
    pages.append(guest.get(f"/s/{token}").text)
    for page in pages:
        assert "&lt;script&gt;" in page or "&lt;img" in page or "%3Cscript%3E" in page
        assert_escaped(page, hostile_files)
    # A drop box answers with the name sent and shows this visit's names: escaped too.
    box = web()
    token = clinic.links["dropbox"]
    assert box.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
    page = box.get(f"/s/{token}").text
    sent = box.put(
        f"/s/{token}/put/", params={"name": HOSTILE_NAMES[0]}, content=b"x", headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert sent.status_code == 201 and sent.headers["Content-Type"].startswith("application/json")
    try:
        assert_escaped(box.get(f"/s/{token}").text, HOSTILE_NAMES[:1])
    finally:
        clinic["alice"].delete(f"D%C3%A9p%C3%B4t/{quote(HOSTILE_NAMES[0])}")
    # Downloads of such a file never render in the site's origin.
    got = alice.get(f"/ui/files/Commun/{quote(hostile_files[0])}")
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in got.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "javascript:alert(1)", "/%2F%2Fevil.example"],
)
def test_no_redirect_leaves_the_site(clinic: Clinic, web: Callable[..., Web], target: str) -> None:
    browser = web()
    token = csrf_of(browser.get("/ui/login").text)
    logged = browser.post(
        f"/ui/login?next={quote(target)}",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
    )
    answers = [logged]
    answers.append(browser.get(f"/ui/files/?next={quote(target)}"))
    answers.append(browser.form("/ui/files/", "/ui/files/mkdir", {"path": target, "name": "x", "next": target}))
    answers.append(browser.get(f"/ui/logout?next={quote(target)}"))
    answers.append(web().get(f"/ui/shares?next={quote(target)}"))  # not signed in: to the login page
    for answer in answers:
        location = answer.headers.get("Location")
        if location is not None:
            parts = urlsplit(location)
            assert parts.netloc in ("", urlsplit(clinic.url).netloc), location
            assert parts.scheme in ("", "http"), location
            assert location.startswith(("/", clinic.url)) and not location.startswith(("//", "/\\")), location


def test_every_change_needs_this_sessions_csrf_token(clinic: Clinic, unchanged: None, web: Callable[..., Web]) -> None:
    alice, bob = web("alice"), web("bob")
    bobs_token = csrf_of(bob.get("/ui/files/").text)
    for token in (None, "", "forged", bobs_token):
        data = {"path": "", "name": "csrf-test"} | ({} if token is None else {"csrf_token": token})
        assert alice.post("/ui/files/mkdir", data=data).status_code in (400, 403)
        delete = {"path": "ordonnance.pdf"} | ({} if token is None else {"csrf_token": token})
        assert alice.post("/ui/files/delete", data=delete).status_code in (400, 403)
        headers = {} if token is None else {"X-CSRF-Token": token}
        assert alice.put("/ui/files/put/", params={"name": "x.pdf"}, content=b"x", headers=headers).status_code in (
            400,
            403,
        )
    guest, other = web(), web()
    token = clinic.links["write"]
    for browser in (guest, other):
        assert browser.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
    others_token = csrf_of(other.get(f"/s/{token}").text)
    for header in (None, "forged", others_token):
        headers = {} if header is None else {"X-CSRF-Token": header}
        sent = guest.put(f"/s/{token}/put/", params={"name": "x.pdf"}, content=b"x", headers=headers)
        assert sent.status_code in (400, 403), (header, sent.status_code)
        assert guest.post(f"/s/{token}/leave", data={} if header is None else {"csrf_token": header}).status_code in (
            400,
            403,
        )


def test_a_session_brought_by_the_browser_is_never_adopted(clinic: Clinic, web: Callable[..., Web]) -> None:
    planted = secrets.token_urlsafe(32)
    victim = web()
    victim.cookies.set("meddav_session", planted, domain="127.0.0.1", path="/")
    assert victim.login("alice", PASSWORD).status_code == 303
    assert victim.cookies.get("meddav_session") not in (None, planted)
    attacker = web()
    attacker.cookies.set("meddav_session", planted, domain="127.0.0.1", path="/")
    assert attacker.get("/ui/files/").status_code in (302, 303)  # to the login page: nothing opened
    # The recipient's pages too.
    token = clinic.links["read"]
    guest = web()
    guest.cookies.set("meddav_share", planted, domain="127.0.0.1", path=f"/s/{token}")
    assert guest.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
    assert guest.cookies.get("meddav_share", path=f"/s/{token}") not in (None, planted)
    intruder = web()
    intruder.cookies.set("meddav_share", planted, domain="127.0.0.1", path=f"/s/{token}")
    assert "irm.pdf" not in intruder.get(f"/s/{token}").text


def test_guessing_link_tokens_is_throttled_on_the_pages_and_over_webdav(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    """Each address may miss a few dozen tokens in a window, then waits; the login throttle is not touched."""
    server = start_server(make_test_instance())
    inst = server.instance
    alice = inst.accounts.create_user("alice", PASSWORD)
    folder = inst.tree.mkdir(inst.tree.get(alice.root_id), "Dupont Jeanne")
    made = inst.shares.create(alice.principal(), folder, email="p@example.org", password=LINK_PASSWORD)
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as guesser:
        for _ in range(70):
            guess = secrets.token_hex(20)
            statuses.append(guesser.get(f"/s/{guess}").status_code)
        assert set(statuses[:20]) == {404} and statuses[-1] == 429, statuses
        assert "Retry-After" in guesser.get(f"/s/{secrets.token_hex(20)}").headers
        # Even the right token waits now, from this address: a scan learns nothing by finding one.
        assert guesser.get(f"/s/{made.token}").status_code == 429
        dav = guesser.get(f"/public/{secrets.token_hex(20)}/", auth=("anyone", LINK_PASSWORD))
        assert dav.status_code == 429
    with httpx.Client(base_url=server.dav_url, auth=("alice", PASSWORD), timeout=30) as owner:
        assert owner.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207  # logins unaffected


def test_guessing_a_link_password_is_throttled(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    server = start_server(make_test_instance())  # its own: the guesses throttle this address
    inst = server.instance
    alice = inst.accounts.create_user("alice", PASSWORD)
    folder = inst.tree.mkdir(inst.tree.get(alice.root_id), "Dupont Jeanne")
    made = inst.shares.create(alice.principal(), folder, email="p@example.org", password=LINK_PASSWORD)
    with Web(base_url=server.url, timeout=30) as guesser:
        statuses = [guesser.form(f"/s/{made.token}", data={"password": f"guess {i}"}).status_code for i in range(8)]
        assert statuses[0] == 401 and 429 in statuses, statuses
        over_dav = [guesser.get(f"/public/{made.token}/", auth=("x", f"guess {i}")).status_code for i in range(3)]
        assert 429 in over_dav, over_dav


# -- headers ----------------------------------------------------------------------------------------------------

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def test_every_response_carries_the_security_headers(clinic: Clinic, web: Callable[..., Web]) -> None:
    alice = web("alice")
    anonymous = web()
    token = clinic.links["read"]
    answers = [
        anonymous.get("/"),
        anonymous.get("/ui/login"),
        anonymous.get("/ui/no-such-page"),
        anonymous.get("/static/share.js"),
        anonymous.post("/ui/login", data={}),
        anonymous.get(f"/s/{token}"),
        anonymous.get("/s/unknown"),
        anonymous.get("/api/v1/shares"),
        alice.get("/ui/files/"),
        alice.get("/ui/files/ordonnance.pdf"),
        alice.get("/api/v1/openapi.json"),
        clinic["alice"].request("PROPFIND", "", headers={"Depth": "0"}),
        clinic["alice"].get("ordonnance.pdf"),
        clinic["alice"].get("nothing-here"),
        httpx.get(clinic.dav_url),
        httpx.request("OPTIONS", clinic.dav_url),
        httpx.get(f"{clinic.url}/public/{token}/", auth=("x", LINK_PASSWORD)),
        httpx.get(f"{clinic.url}/public/{token}/", auth=("x", "wrong")),
    ]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name, answer.headers)
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy or "sandbox" in policy, (answer.request.url, policy)
        assert "Strict-Transport-Security" not in answer.headers  # plain HTTP here: see the test below
        assert "Server" not in answer.headers or re.fullmatch(r"MedDAV", answer.headers["Server"])


def test_behind_an_https_proxy_cookies_are_secure_and_hsts_is_sent(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    settings = {"server": {"public_url": "https://fichiers.example.org", "trusted_proxies": ["127.0.0.1"]}}
    server = start_server(make_test_instance(settings))
    server.instance.accounts.create_user("alice", PASSWORD)
    with Web(base_url=server.url, timeout=30) as browser:
        page = browser.get("/ui/login")
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        # The browser would send its Secure cookies back over HTTPS; httpx, on plain HTTP, has to be told.
        kept = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies.jar)
        form = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
        login = browser.post("/ui/login", data=form, headers={"Cookie": kept})
        assert login.status_code == 303
        cookies = login.headers.get_list("Set-Cookie") + page.headers.get_list("Set-Cookie")
        assert len(cookies) >= 2 and all("Secure" in cookie for cookie in cookies), cookies
