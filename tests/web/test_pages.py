"""The web pages through httpx against a live server: sessions, CSRF, languages, throttling, reset links.

Secure cookies under TLS are not tested here (a TLS live server needs a
certificate the test would have to make and trust); the code sets
``secure=settings.server.tls`` on every cookie it writes.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable

import httpx
import pyotp
from sqlalchemy import select, update

from server.db.models import one_time_tokens_t, web_sessions_t
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import (
    MEMBER,
    MEMBER_EMAIL,
    Mailbox,
    Web,
    add_member,
    csrf_of,
    smtp_settings,
)

NEW_PASSWORD = "une-phrase-de-passe-assez-longue-2026"
RESET_LINK = re.compile(r"https?://\S+?(/ui/reset/[a-z0-9]+)")


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


def set_cookie_headers(response: httpx.Response) -> list[str]:
    return list(response.headers.get_list("set-cookie"))


# -- sessions -------------------------------------------------------------------------


def test_login_opens_a_server_side_session_in_an_httponly_samesite_cookie(
    live_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    add_member(live_server)
    web = web_client(live_server)
    response = web.login(MEMBER)
    assert response.status_code == 303 and response.headers["location"] == "/ui"
    cookie = next(h for h in set_cookie_headers(response) if h.startswith("meddav_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= flags
    assert "secure" not in flags  # plain HTTP on loopback; Secure comes with [server] tls
    home = web.get("/ui")
    assert home.status_code == 200 and MEMBER in home.text and "Default organisation" in home.text
    assert home.headers["Cache-Control"] == "no-store"
    user_id = live_server.instance.accounts.get(MEMBER).id
    assert len(live_server.instance.credentials.sessions(user_id)) == 1


def test_a_new_login_replaces_the_browsers_session(live_server: LiveServer, web_client: Callable[..., Web]) -> None:
    add_member(live_server)
    web = web_client(live_server)
    web.login(MEMBER)
    first = web.cookies["meddav_session"]
    web.login(MEMBER)
    assert web.cookies["meddav_session"] != first
    stale = web_client(live_server, cookies={"meddav_session": first})
    assert stale.get("/ui").headers["location"] == "/ui/login"


def test_same_answer_for_unknown_user_and_wrong_password(
    live_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    add_member(live_server)
    web = web_client(live_server)
    unknown = web.login("nobody", "whatever-password")
    wrong = web.login(MEMBER, "not-the-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Nom d'utilisateur ou mot de passe incorrect." in text_of(unknown)
    assert "Nom d'utilisateur ou mot de passe incorrect." in text_of(wrong)
    assert "meddav_session" not in web.cookies


def test_logout_ends_the_session_on_the_server(live_server: LiveServer, web_client: Callable[..., Web]) -> None:
    add_member(live_server)
    web = web_client(live_server)
    web.login(MEMBER)
    cookie = web.cookies["meddav_session"]
    response = web.form("/ui", "/ui/logout")
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login")
    assert any(h.startswith("meddav_session=;") or 'meddav_session=""' in h for h in set_cookie_headers(response))
    replay = web_client(live_server, cookies={"meddav_session": cookie})
    assert replay.get("/ui").headers["location"] == "/ui/login"
    assert live_server.instance.credentials.sessions(live_server.instance.accounts.get(MEMBER).id) == []


def test_idle_timeout_and_absolute_lifetime(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
) -> None:
    server = start_server(make_test_instance({"web": {"session_idle_minutes": 1, "session_lifetime_hours": 1}}))
    add_member(server)
    credentials, db = server.instance.credentials, server.instance.db

    # The rule itself, with the clock as an argument.
    _, cookie = credentials.open_session(1, address="127.0.0.1", user_agent="t", lifetime_seconds=3600, now=1000.0)
    assert credentials.session(cookie, idle_seconds=60, now=1059.0) is not None
    assert credentials.session(cookie, idle_seconds=60, now=1059.0 + 61) is None  # idle
    assert credentials.session(cookie, idle_seconds=10**6, now=1000.0 + 3601) is None  # lifetime

    # Through the pages: a session left idle for longer than [web] session_idle_minutes ends.
    web = web_client(server)
    web.login(MEMBER)
    assert web.get("/ui").status_code == 200
    with db.write() as c:
        c.run(update(web_sessions_t).values(last_seen_at=time.time() - 61))
    assert web.get("/ui").headers["location"] == "/ui/login"

    # One past its lifetime ends too, however active.
    web.login(MEMBER)
    assert web.get("/ui").status_code == 200
    with db.write() as c:
        c.run(update(web_sessions_t).values(expires_at=time.time() - 1))
    assert web.get("/ui").headers["location"] == "/ui/login"
    with db.read() as c:
        created, expires = c.one(
            select(web_sessions_t.c.created_at, web_sessions_t.c.expires_at).order_by(web_sessions_t.c.id.desc())
        )
    assert created is not None and expires is not None


# -- CSRF -------------------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(
    live_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    add_member(live_server)
    instance = live_server.instance
    user_id = instance.accounts.get(MEMBER).id

    # The login form itself: no token, no session.
    web = web_client(live_server)
    web.get("/ui/login")
    refused = web.post("/ui/login", data={"username": MEMBER, "password": TEST_PASSWORD})
    assert refused.status_code == 400 and "meddav_session" not in web.cookies
    assert "Ce formulaire a expiré" in text_of(refused)

    web.login(MEMBER)
    other = web_client(live_server)
    other.login(MEMBER)
    foreign_token = csrf_of(other.get("/ui").text)  # valid, but for another session
    for token in (None, "", "forged", foreign_token):
        data = {"name": "laptop"} if token is None else {"name": "laptop", "csrf_token": token}
        assert web.post("/ui/app-passwords", data=data).status_code == 400
        password_change = {
            "current_password": TEST_PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        }
        if token is not None:
            password_change["csrf_token"] = token
        assert web.post("/ui/security/password", data=password_change).status_code == 400
        assert (
            web.post("/ui/sessions/revoke-others", data={} if token is None else {"csrf_token": token}).status_code
            == 400
        )
        assert web.post("/ui/logout", data={} if token is None else {"csrf_token": token}).status_code == 400
    assert instance.credentials.app_passwords(user_id) == []
    assert len(instance.credentials.sessions(user_id)) == 2
    assert web.get("/ui").status_code == 200  # still signed in
    fresh = web_client(live_server)
    assert fresh.login(MEMBER).status_code == 303  # the password did not change


# -- throttling ---------------------------------------------------------------------------


def test_a_throttled_login_answers_429_with_the_wait(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
) -> None:
    server = start_server(make_test_instance({"throttle": {"delay_after": 5, "max_failures": 2}}))
    add_member(server)
    web = web_client(server)
    assert web.login(MEMBER, "wrong-1").status_code == 401
    assert web.login(MEMBER, "wrong-2").status_code == 401
    throttled = web.login(MEMBER)  # even the right password is not checked now
    assert throttled.status_code == 429
    wait = int(throttled.headers["Retry-After"])
    assert 0 < wait <= 600
    assert f"Veuillez patienter {wait}" in text_of(throttled)
    assert "meddav_session" not in web.cookies


# -- languages ------------------------------------------------------------------------------


def test_pages_follow_accept_language_then_the_users_choice(
    live_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    add_member(live_server, locale="fr")
    web = web_client(live_server)
    french = web.get("/ui/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert 'lang="fr"' in french.text and "Se connecter" in french.text and "Mot de passe oublié" in french.text
    english_browser = web.get("/ui/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert 'lang="en"' in english_browser.text and "Forgotten password?" in english_browser.text

    chosen = web.get("/ui/login?lang=en", headers={"Accept-Language": "fr"})
    assert 'lang="en"' in chosen.text and "Sign in" in chosen.text
    assert web.cookies["meddav_lang"] == "en"
    assert 'lang="en"' in web.get("/ui/login", headers={"Accept-Language": "fr"}).text  # the choice is kept

    # Signed in, a choice becomes the user's language (and their mails').
    web.login(MEMBER)
    assert "My account" in web.get("/ui").text
    web.get("/ui?lang=fr")
    assert live_server.instance.accounts.get(MEMBER).locale == "fr"
    web.get("/ui?lang=en")
    assert live_server.instance.accounts.get(MEMBER).locale == "en"
    # On a new browser, the user's language wins over Accept-Language once signed in.
    other = web_client(live_server, headers={"Accept-Language": "fr"})
    other.login(MEMBER)
    assert 'lang="en"' in other.get("/ui").text


def test_dates_are_written_out_in_the_page_language(live_server: LiveServer, web_client: Callable[..., Web]) -> None:
    add_member(live_server)
    web = web_client(live_server)
    web.login(MEMBER)
    web.form("/ui/app-passwords", data={"name": "Portable"})
    months_fr = "janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"
    assert re.search(rf"\d{{1,2}} ({months_fr}) \d{{4}}, \d\d:\d\d", web.get("/ui/app-passwords?lang=fr").text)
    assert re.search(r"[A-Z][a-z]+ \d{1,2}, \d{4}, \d{1,2}:\d\d", web.get("/ui/sessions?lang=en").text)


# -- second factor required -------------------------------------------------------------------------


def test_an_admin_without_a_second_factor_is_sent_to_enrolment(
    live_server: LiveServer, instance_dir: TestInstance, web_client: Callable[..., Web]
) -> None:
    web = web_client(live_server)
    assert web.login(instance_dir.user).headers["location"] == "/ui"
    for page in ("/ui", "/ui/app-passwords", "/ui/sessions"):
        assert web.get(page).headers["location"] == "/ui/security", page
    security = web.get("/ui/security")
    assert security.status_code == 200 and 'id="must-enrol"' in security.text
    assert 'action="/ui/security/password"' not in security.text
    # A forged way round the enrolment changes nothing.
    token = csrf_of(security.text)
    assert web.post("/ui/app-passwords", data={"name": "x", "csrf_token": token}).status_code == 302
    admin_id = live_server.instance.accounts.get(instance_dir.user).id
    assert live_server.instance.credentials.app_passwords(admin_id) == []

    enrol = web.form("/ui/security", "/ui/security/totp/start")
    secret = "".join(re.search(r'id="totp-secret">([A-Z2-7 ]+)<', enrol.text).group(1).split())  # type: ignore[union-attr]
    pending = re.search(r'name="pending" value="([^"]+)"', enrol.text).group(1)  # type: ignore[union-attr]
    assert "<svg" in enrol.text  # the QR code, inline

    wrong = web.post("/ui/security/totp/confirm", data={"csrf_token": token, "pending": pending, "code": "000000"})
    assert wrong.status_code == 400 and not live_server.instance.credentials.has_totp(admin_id)
    tampered = pending.replace(secret[:4], "AAAA", 1)
    code = pyotp.TOTP(secret).now()
    refused = web.post("/ui/security/totp/confirm", data={"csrf_token": token, "pending": tampered, "code": code})
    assert refused.status_code == 400 and not live_server.instance.credentials.has_totp(admin_id)

    done = web.post("/ui/security/totp/confirm", data={"csrf_token": token, "pending": pending, "code": code})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert live_server.instance.credentials.recovery_codes_left(admin_id) == 10
    assert web.get("/ui").status_code == 200  # this session passed the second factor
    assert web.get("/ui/app-passwords").status_code == 200


# -- password change -----------------------------------------------------------------------------------


def test_password_change_checks_the_policy_and_ends_the_other_sessions(
    live_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    add_member(live_server)
    web, elsewhere = web_client(live_server), web_client(live_server)
    web.login(MEMBER)
    elsewhere.login(MEMBER)

    def change(current: str, new: str, confirm: str | None = None) -> httpx.Response:
        return web.form(
            "/ui/security",
            "/ui/security/password",
            {"current_password": current, "new_password": new, "confirm_password": confirm or new},
        )

    assert change("wrong-current", NEW_PASSWORD).status_code == 400
    mismatch = change(TEST_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")
    assert "Les deux nouveaux mots de passe ne sont pas identiques." in text_of(mismatch)
    weak = change(TEST_PASSWORD, "abc")
    assert weak.status_code == 400 and "mot de passe trop court" in text_of(weak)  # the policy, in French

    done = change(TEST_PASSWORD, NEW_PASSWORD)
    assert done.status_code == 303
    assert web.get("/ui").status_code == 200  # this session goes on
    assert elsewhere.get("/ui").headers["location"] == "/ui/login"  # the other one ended
    assert web_client(live_server).login(MEMBER, NEW_PASSWORD).status_code == 303


# -- sessions page -----------------------------------------------------------------------------------------


def test_sessions_page_lists_and_ends_sessions(live_server: LiveServer, web_client: Callable[..., Web]) -> None:
    add_member(live_server)
    web = web_client(live_server, headers={"User-Agent": "Firefox de test"})
    laptop = web_client(live_server, headers={"User-Agent": "Navigateur du portable"})
    phone = web_client(live_server, headers={"User-Agent": "Navigateur du telephone"})
    for client in (web, laptop, phone):
        client.login(MEMBER)
    page = web.get("/ui/sessions").text
    assert "Cette session" in page and "Navigateur du portable" in page and "127.0.0.1" in page
    user_id = live_server.instance.accounts.get(MEMBER).id
    laptop_session = next(
        s for s in live_server.instance.credentials.sessions(user_id) if s.user_agent == "Navigateur du portable"
    )
    assert web.form("/ui/sessions", f"/ui/sessions/{laptop_session.id}/revoke").status_code == 303
    assert laptop.get("/ui").headers["location"] == "/ui/login"
    assert phone.get("/ui").status_code == 200
    assert web.form("/ui/sessions", "/ui/sessions/revoke-others").status_code == 303
    assert phone.get("/ui").headers["location"] == "/ui/login"
    assert web.get("/ui").status_code == 200


# -- forgotten password ---------------------------------------------------------------------------------------


def wait_for_mail(mailbox: Mailbox, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(mailbox.messages) < count:
        assert time.monotonic() < deadline, f"{count} mail(s) expected, {len(mailbox.messages)} arrived"
        time.sleep(0.05)


def reset_path(mailbox: Mailbox, index: int) -> str:
    body = mailbox.messages[index].get_body(preferencelist=("plain",))
    assert body is not None
    match = RESET_LINK.search(body.get_content())
    assert match is not None, "no reset link in the mail"
    return match.group(1)


def test_forgotten_password_by_email_link_works_once(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
    mailbox: Mailbox,
) -> None:
    server = start_server(make_test_instance(smtp_settings(mailbox)))
    add_member(server, locale="fr")
    add_member(server, "bob", email="bob@example.org", locale="en")
    signed_in = web_client(server)
    signed_in.login(MEMBER)
    web = web_client(server, headers={"Accept-Language": "en"})

    # The same answer whether the account exists or not; a mail only for the real one.
    unknown = web.form("/ui/forgot", data={"who": "nobody"})
    known = web.form("/ui/forgot", data={"who": MEMBER_EMAIL})
    assert unknown.status_code == known.status_code == 200
    strip = re.compile(r'value="[^"]+"')
    assert strip.sub("", unknown.text) == strip.sub("", known.text)
    wait_for_mail(mailbox, 1)
    time.sleep(0.2)
    assert len(mailbox.messages) == 1

    mail = mailbox.messages[0]
    assert mail["To"] == MEMBER_EMAIL and mail["Content-Language"] == "fr"  # the user's language, not the page's
    assert mail["Subject"] == "Réinitialisation de votre mot de passe MedDAV"
    path = reset_path(mailbox, 0)

    form = web.get(path)
    assert form.status_code == 200 and MEMBER in form.text
    token = csrf_of(form.text)
    mismatch = web.post(path, data={"csrf_token": token, "new_password": NEW_PASSWORD, "confirm_password": "x"})
    assert mismatch.status_code == 400
    done = web.post(path, data={"csrf_token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["location"].startswith("/ui/login")
    assert web.get(path).status_code == 404  # used
    again = web.post(path, data={"csrf_token": token, "new_password": "x" * 20, "confirm_password": "x" * 20})
    assert again.status_code == 404
    assert signed_in.get("/ui").headers["location"] == "/ui/login"  # every session ended
    assert web_client(server).login(MEMBER).status_code == 401
    assert web_client(server).login(MEMBER, NEW_PASSWORD).status_code == 303

    # By user name, in English for an English-speaking user; and an expired link fails.
    web.form("/ui/forgot", data={"who": "bob"})
    wait_for_mail(mailbox, 2)
    assert mailbox.messages[1]["Subject"] == "Resetting your MedDAV password"
    path = reset_path(mailbox, 1)
    assert web.get(path).status_code == 200
    with server.instance.db.write() as c:
        c.run(update(one_time_tokens_t).values(expires_at=time.time() - 1))
    expired = web.get(path)
    assert expired.status_code == 404 and "no longer valid" in expired.text
    assert web.get("/ui/reset/not-a-token").status_code == 404
