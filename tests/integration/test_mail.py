"""Outgoing mail against a real SMTP server on loopback (aiosmtpd), and the console backend's log.

No mock: each test starts an aiosmtpd ``Controller`` on 127.0.0.1 (a free port) whose
handler keeps what it received, parsed as the recipient's mail program would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import server.mail
from server.config import MailSettings
from server.errors import BadRequest, MedDAVError
from server.log import JsonFormatter, TextFormatter
from server.mail import (
    BUILTIN_VARIABLES,
    LOCALES,
    TEMPLATES,
    ConsoleBackend,
    InvalidMail,
    Mailer,
    MailError,
    SmtpBackend,
    format_when,
    mask_url,
    normalise_locale,
)
from tests.helpers import self_signed

BASE_URL = "https://dav.example.org"
FROM = "MedDAV <no-reply@dav.example.org>"
TO = "alice@example.org"
WHEN = dt.datetime(2026, 11, 26, 14, 5, tzinfo=dt.UTC)  # a Thursday
SMTP_USER = "meddav"
SMTP_PASSWORD = "s3cret-smtp-Pa55"
TOKEN = "Zk3_qP9xW2vLr8TnYh4bJc6mDs1aFe0uGi7oKw5yXtQ"  # looks like secrets.token_urlsafe(32)

#: One context per template, with a token in every link.
CONTEXTS: dict[str, dict[str, Any]] = {
    "invitation": {
        "inviter_name": "Dr Claire Martin",
        "organisation_name": "Cabinet Pasteur",
        "set_password_url": f"{BASE_URL}/invite/{TOKEN}",
        "expires_at": WHEN,
        "recipient_name": "Alice Durand",
    },
    "password_reset": {"reset_url": f"{BASE_URL}/reset/{TOKEN}?lang=fr", "expires_at": WHEN},
    "second_factor_reset": {"admin_name": "Bruno Admin", "reset_at": WHEN},
    "new_app_password": {"created_at": WHEN, "ip_address": "192.0.2.44", "app_password_name": "Thunderbird"},
    "plugin_alert": {
        "plugin_name": "EHR bridge",
        "problem": "The EHR refuses the credentials of MedDAV (HTTP 401).",
        "advice": "Renew the access token.",
        "noticed_at": WHEN,
        "status_url": f"{BASE_URL}/plugins/ehr_bridge/{TOKEN}",
    },
    "share_link": {
        "owner_name": "Dr Claire Martin",
        "link_url": f"{BASE_URL}/s/{TOKEN}",
        "expires_at": WHEN,
        "access": "read",
        "proof": "password-mail",
    },
    "share_password": {"owner_name": "Dr Claire Martin", "password": "tulipe-ocre-4217"},
    "share_code": {"owner_name": "Dr Claire Martin", "code": "418207", "minutes": 10},
    "dropbox_digest": {"arrivals": 3, "boxes": 1, "overview_url": "https://dav.example.org/ui/shares"},
}

SUBJECTS = {
    ("invitation", "fr"): "Dr Claire Martin vous invite sur MedDAV (Cabinet Pasteur)",
    ("invitation", "en"): "Dr Claire Martin invites you to MedDAV (Cabinet Pasteur)",
    ("password_reset", "fr"): "Réinitialisation de votre mot de passe MedDAV",
    ("password_reset", "en"): "Resetting your MedDAV password",
    ("second_factor_reset", "fr"): "Le second facteur de votre compte MedDAV a été réinitialisé",
    ("second_factor_reset", "en"): "The second factor of your MedDAV account was reset",
    ("new_app_password", "fr"): "Nouveau mot de passe d'application sur votre compte MedDAV",
    ("new_app_password", "en"): "New app password on your MedDAV account",
    ("plugin_alert", "fr"): "MedDAV : EHR bridge a besoin de votre intervention",
    ("plugin_alert", "en"): "MedDAV: EHR bridge needs your attention",
    ("share_link", "fr"): "Dr Claire Martin partage un document avec vous sur MedDAV",
    ("share_link", "en"): "Dr Claire Martin shares a document with you on MedDAV",
    ("share_password", "fr"): "Le mot de passe du partage de Dr Claire Martin",
    ("share_password", "en"): "The password of Dr Claire Martin's share",
    ("share_code", "fr"): "Votre code pour ouvrir le partage de Dr Claire Martin",
    ("share_code", "en"): "Your code to open Dr Claire Martin's share",
    ("dropbox_digest", "fr"): "3 nouveaux fichiers dans votre dépôt",
    ("dropbox_digest", "en"): "3 new files in your drop box",
}

WHEN_IN_WORDS = {
    "fr": "jeudi 26 novembre 2026 à 14:05 (UTC)",
    "en": "Thursday 26 November 2026 at 14:05 (UTC)",
}


# --- a real SMTP server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    auth: Any


class Collector:
    """An aiosmtpd handler that keeps every mail it accepts."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.ssl is not None, session.auth_data)
        )
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    collector: Collector

    @property
    def received(self) -> list[Received]:
        return self.collector.received


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server on loopback; keyword arguments go to its ``Controller``."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> SmtpServer:
        collector = Collector()
        port = free_port()
        controller = Controller(collector, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, collector)

    yield start
    for controller in controllers:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    server_context: ssl.SSLContext
    #: A client context that trusts this (self-signed) certificate and nothing else.
    trusting_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made here."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("smtp-tls"))
    cert_pem = cert_file.read_bytes()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return Certificate(server_context, ssl.create_default_context(cadata=cert_pem.decode()))


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def settings(port: int, **overrides: Any) -> MailSettings:
    values: dict[str, Any] = {
        "backend": "smtp",
        "from_address": FROM,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_username": "",
        "smtp_password": "",
        "smtp_timeout_seconds": 5,
    }
    values.update(overrides)
    return MailSettings(**values)


def smtp_mailer(port: int, *, ssl_context: ssl.SSLContext | None = None, **overrides: Any) -> Mailer:
    return Mailer.from_settings(settings(port, **overrides), base_url=BASE_URL, ssl_context=ssl_context)


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a received mail."""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


# --- every template, in both languages ------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_each_template_arrives_as_text_and_html(
    smtp_server: Callable[..., SmtpServer], template: str, locale: str
) -> None:
    server = smtp_server()
    smtp_mailer(server.port).send(
        template, "Alice Durand <alice@example.org>", locale=locale, context=CONTEXTS[template]
    )

    [received] = server.received
    assert received.mail_from == "no-reply@dav.example.org"
    assert received.rcpt_tos == ["alice@example.org"]
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == FROM
    assert message["To"] == "Alice Durand <alice@example.org>"
    assert message["Subject"] == SUBJECTS[template, locale]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == locale
    assert re.fullmatch(r"<[^<>@\s]+@dav\.example\.org>", message["Message-ID"])
    assert message["Date"].datetime.tzinfo is not None

    text, html = parts(message)
    if any(isinstance(value, dt.datetime) for value in CONTEXTS[template].values()):
        assert WHEN_IN_WORDS[locale] in text
        assert WHEN_IN_WORDS[locale] in html
    assert f'<html lang="{locale}">' in html
    assert f"<title>{SUBJECTS[template, locale]}</title>".replace("'", "&#39;") in html
    for name, value in CONTEXTS[template].items():
        if isinstance(value, str) and name not in TEMPLATES[template].choices:  # a choice words the mail
            assert value in text, name
            assert value in html.replace("&amp;", "&"), name
    greeting = {"fr": "Bonjour", "en": "Hello"}[locale]
    assert text.startswith(f"{greeting} Alice Durand,\n\n" if template == "invitation" else f"{greeting},\n\n")


def test_french_and_english_mails_differ(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    mailer = smtp_mailer(server.port)
    mailer.send("password_reset", TO, locale="fr-FR", context=CONTEXTS["password_reset"])
    mailer.send("password_reset", TO, locale="de", context=CONTEXTS["password_reset"])
    french, other = (parts(received.message)[0] for received in server.received)
    assert "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message" in french
    assert "If it was not you, ignore this message" in other  # any language but French gets English


def test_optional_values_may_be_left_out(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    smtp_mailer(server.port).send(
        "new_app_password", TO, locale="fr", context={"created_at": WHEN, "ip_address": "2001:db8::1"}
    )
    text, _ = parts(server.received[0].message)
    assert "Un mot de passe d'application a été créé sur votre compte MedDAV le jeudi 26 novembre 2026" in text
    assert "nommé" not in text


def test_html_part_escapes_context_values(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    context = dict(CONTEXTS["invitation"], inviter_name="<script>alert(1)</script>", organisation_name='A&B "x"')
    smtp_mailer(server.port).send("invitation", TO, locale="en", context=context)
    text, html = parts(server.received[0].message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B &#34;x&#34;" in html
    assert "<script>alert(1)</script> invites you" in text  # plain text is not HTML: shown as typed


# --- what a mail may contain ------------------------------------------------------------------------------

#: Words no context variable may contain: mails carry who, a link and when, never health data.
FORBIDDEN_WORDS = ("file", "document", "note", "path", "folder", "content", "patient", "diagnos", "comment", "share")

TEMPLATE_DIR = Path(server.mail.__file__).parent / "templates"


def variables_used(env: jinja2.Environment, name: str) -> set[str]:
    """The context variables a template reads, with those of the templates it extends or includes."""
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    ast = env.parse(source)
    used = set(jinja2.meta.find_undeclared_variables(ast))
    for other in jinja2.meta.find_referenced_templates(ast):
        assert other is not None, f"{name}: templates are referenced by constant names"
        used |= variables_used(env, other)
    return used


@pytest.mark.parametrize("locale", LOCALES)
def test_templates_use_only_the_variables_they_are_given(locale: str) -> None:
    env = server.mail._render.environment(locale)
    files = sorted(path.name for path in (TEMPLATE_DIR / locale).iterdir())
    expected = sorted(f"{name}.{ext}" for name in TEMPLATES for ext in ("html", "subject", "txt"))
    assert [f for f in files if not f.startswith("_")] == expected
    for template, spec in TEMPLATES.items():
        for ext in ("subject", "txt", "html"):
            used = variables_used(env, f"{template}.{ext}")
            assert used <= spec.allowed | BUILTIN_VARIABLES, f"{locale}/{template}.{ext}: {used - spec.allowed}"
        for ext in ("txt", "html"):
            used = variables_used(env, f"{template}.{ext}")
            assert spec.required <= used, f"{locale}/{template}.{ext} leaves out {spec.required - used}"


def test_no_template_variable_can_hold_health_data() -> None:
    names = set(BUILTIN_VARIABLES)
    for spec in TEMPLATES.values():
        names |= spec.allowed
    for path in TEMPLATE_DIR.glob("*/*"):
        names |= set(re.findall(r"\{\{-?\s*([a-z_]+)", path.read_text(encoding="utf-8")))
    offending = sorted(n for n in names if any(word in n for word in FORBIDDEN_WORDS))
    assert offending == []


def test_rendered_mail_holds_only_the_context_given() -> None:
    """Two renderings differ exactly where their context values differ: the text comes from nowhere else."""
    mailer = Mailer(ConsoleBackend(), from_address=FROM, base_url=BASE_URL)
    for template, context in CONTEXTS.items():
        choices = TEMPLATES[template].choices  # a choice words the mail: it is not text to carry through
        other = {
            name: (
                value + "Q7" if isinstance(value, str) and not name.endswith("_url") and name not in choices else value
            )
            for name, value in context.items()
        }
        for locale in LOCALES:
            first, second = (
                parts(mailer.compose(template, TO, locale=locale, context=c).message) for c in (context, other)
            )
            for one, two in zip(first, second, strict=True):
                for name, value in context.items():
                    if isinstance(value, str) and not name.endswith("_url") and name not in choices:
                        two = two.replace(value + "Q7", value)
                assert one == two


def test_context_beyond_the_template_is_refused(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    mailer = smtp_mailer(server.port)
    with pytest.raises(ValueError, match="access: one of dropbox, read, write, not 'admin'"):
        mailer.send("share_link", TO, locale="fr", context={**CONTEXTS["share_link"], "access": "admin"})
    with pytest.raises(ValueError, match="takes no file_name"):
        mailer.send("password_reset", TO, locale="fr", context={**CONTEXTS["password_reset"], "file_name": "x.pdf"})
    with pytest.raises(ValueError, match="needs expires_at"):
        mailer.send("password_reset", TO, locale="fr", context={"reset_url": f"{BASE_URL}/reset/{TOKEN}"})
    with pytest.raises(ValueError, match="no mail template"):
        mailer.send("share_notice", TO, locale="fr", context={})
    with pytest.raises(ValueError, match="timezone-aware"):
        mailer.send(
            "second_factor_reset", TO, locale="fr", context={"admin_name": "B", "reset_at": dt.datetime(2026, 1, 1)}
        )
    with pytest.raises(TypeError, match="a datetime"):
        mailer.send("second_factor_reset", TO, locale="fr", context={"admin_name": "B", "reset_at": "tomorrow"})
    with pytest.raises(ValueError, match="must point to this server"):
        mailer.send(
            "password_reset",
            TO,
            locale="fr",
            context={**CONTEXTS["password_reset"], "reset_url": "https://evil.example/reset/x"},
        )
    assert server.received == []


# --- header injection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "to",
    [
        "alice@example.org\r\nBcc: eve@example.org",
        "alice@example.org\nBcc: eve@example.org",
        "alice@example.org\r",
        "alice@example.org, eve@example.org",
        "alice",
        "alice@",
        "",
    ],
)
def test_malformed_recipient_is_refused(smtp_server: Callable[..., SmtpServer], to: str) -> None:
    server = smtp_server()
    with pytest.raises(InvalidMail) as raised:
        smtp_mailer(server.port).send("password_reset", to, locale="fr", context=CONTEXTS["password_reset"])
    assert isinstance(raised.value, BadRequest)
    assert server.received == []


def test_line_break_in_subject_is_refused(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    context = dict(CONTEXTS["invitation"], inviter_name="Dr X\r\nBcc: eve@example.org")
    with pytest.raises(InvalidMail, match="subject"):
        smtp_mailer(server.port).send("invitation", TO, locale="fr", context=context)
    assert server.received == []


# --- the console backend -------------------------------------------------------------------------------------


def test_console_backend_logs_every_mail_with_secrets_masked(caplog: pytest.LogCaptureFixture) -> None:
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = []
    for kind, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(TextFormatter() if kind == "text" else JsonFormatter())
        handlers.append(handler)
        logging.getLogger("server.mail").addHandler(handler)
    caplog.set_level(logging.INFO, logger="server.mail")
    try:
        mailer = Mailer.from_settings(
            MailSettings("console", FROM, "localhost", 587, "starttls", "", "", 10), base_url=BASE_URL
        )
        assert isinstance(mailer.backend, ConsoleBackend)
        for template, context in CONTEXTS.items():
            for locale in LOCALES:
                mailer.send(template, TO, locale=locale, context=context)
    finally:
        for handler in handlers:
            logging.getLogger("server.mail").removeHandler(handler)

    assert len(caplog.records) == 2 * len(CONTEXTS)
    logged = [
        streams["text"].getvalue(),
        streams["json"].getvalue(),
        caplog.text,
        repr([r.__dict__ for r in caplog.records]),
    ]
    for text in logged:
        assert TOKEN not in text
        assert TOKEN[:12] not in text
        assert "lang=fr" not in text  # the query string of a link is masked too
    records = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    invitation = next(r for r in records if r["template"] == "invitation" and r["locale"] == "fr")
    assert invitation["logger"] == "server.mail.console"
    assert invitation["to"] == TO
    assert invitation["subject"] == SUBJECTS["invitation", "fr"]
    assert f"{BASE_URL}/invite/…" in invitation["text"]
    assert WHEN_IN_WORDS["fr"] in invitation["text"]
    reset = next(r for r in records if r["template"] == "password_reset" and r["locale"] == "en")
    assert f"{BASE_URL}/reset/…" in reset["text"]


def test_the_recipient_gets_the_real_link_while_the_log_gets_the_masked_one() -> None:
    mailer = Mailer(ConsoleBackend(), from_address=FROM, base_url=BASE_URL)
    mail = mailer.compose("password_reset", TO, locale="en", context=CONTEXTS["password_reset"])
    assert TOKEN in parts(mail.message)[0] and TOKEN in parts(mail.message)[1]
    assert TOKEN not in mail.redacted.as_string()
    assert mail.message["Message-ID"] == mail.redacted["Message-ID"]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"{BASE_URL}/reset/{TOKEN}", f"{BASE_URL}/reset/…"),
        (f"{BASE_URL}/s/{TOKEN}/", f"{BASE_URL}/s/…"),
        (f"{BASE_URL}/invite/accept?token={TOKEN}", f"{BASE_URL}/invite/…"),
        (f"{BASE_URL}/app/invite/{TOKEN}/confirm", f"{BASE_URL}/app/invite/…"),
        (f"{BASE_URL}/?t={TOKEN}", f"{BASE_URL}/…"),
        (f"{BASE_URL}#{TOKEN}", f"{BASE_URL}/…"),
        (f"https://user:{TOKEN}@dav.example.org:8443/x", "https://dav.example.org:8443/…"),
    ],
)
def test_mask_url_keeps_only_scheme_host_and_route_words(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert TOKEN not in mask_url(url)


# --- SMTP security and authentication --------------------------------------------------------------------------


def test_starttls_with_a_trusted_certificate(smtp_server: Callable[..., SmtpServer], certificate: Certificate) -> None:
    server = smtp_server(tls_context=certificate.server_context, require_starttls=True)
    mailer = smtp_mailer(server.port, smtp_security="starttls", ssl_context=certificate.trusting_context)
    mailer.send("password_reset", TO, locale="fr", context=CONTEXTS["password_reset"])
    [received] = server.received
    assert received.tls
    assert received.message["Subject"] == SUBJECTS["password_reset", "fr"]


def test_starttls_refuses_a_certificate_the_system_does_not_trust(
    smtp_server: Callable[..., SmtpServer], certificate: Certificate
) -> None:
    server = smtp_server(tls_context=certificate.server_context, require_starttls=True)
    mailer = smtp_mailer(server.port, smtp_security="starttls")  # the system's authorities only
    with pytest.raises(MailError, match="certificate") as raised:
        mailer.send("password_reset", TO, locale="fr", context=CONTEXTS["password_reset"])
    assert "[mail] smtp_host" in str(raised.value)
    assert server.received == []


def test_starttls_checks_the_host_name(smtp_server: Callable[..., SmtpServer], tmp_path: Path) -> None:
    """A certificate trusted but issued to another name is refused as well."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.example.org")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "c.pem").write_bytes(pem)
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server = smtp_server(tls_context=server_context, require_starttls=True)
    mailer = smtp_mailer(
        server.port, smtp_security="starttls", ssl_context=ssl.create_default_context(cadata=pem.decode())
    )
    with pytest.raises(MailError, match="certificate"):
        mailer.send("password_reset", TO, locale="fr", context=CONTEXTS["password_reset"])
    assert server.received == []


def test_starttls_is_never_skipped_when_the_server_lacks_it(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()  # no TLS at all
    with pytest.raises(MailError, match=r"does not offer STARTTLS; check \[mail\] smtp_security"):
        smtp_mailer(server.port, smtp_security="starttls").send(
            "password_reset", TO, locale="fr", context=CONTEXTS["password_reset"]
        )
    assert server.received == []


def test_implicit_tls(smtp_server: Callable[..., SmtpServer], certificate: Certificate) -> None:
    server = smtp_server(ssl_context=certificate.server_context)
    mailer = smtp_mailer(server.port, smtp_security="tls", ssl_context=certificate.trusting_context)
    mailer.send("second_factor_reset", TO, locale="en", context=CONTEXTS["second_factor_reset"])
    [received] = server.received
    assert received.message["Subject"] == SUBJECTS["second_factor_reset", "en"]


def test_implicit_tls_against_a_plain_server_names_smtp_security(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server()
    with pytest.raises(MailError, match=r"\[mail\] smtp_security"):
        smtp_mailer(server.port, smtp_security="tls", smtp_timeout_seconds=3).send(
            "password_reset", TO, locale="fr", context=CONTEXTS["password_reset"]
        )


def test_smtp_login_over_starttls(smtp_server: Callable[..., SmtpServer], certificate: Certificate) -> None:
    server = smtp_server(
        tls_context=certificate.server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    mailer = smtp_mailer(
        server.port,
        smtp_security="starttls",
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        ssl_context=certificate.trusting_context,
    )
    mailer.send("invitation", TO, locale="fr", context=CONTEXTS["invitation"])
    [received] = server.received
    assert received.tls
    assert received.auth == SMTP_USER.encode()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_login_on_a_loopback_relay_without_tls(smtp_server: Callable[..., SmtpServer]) -> None:
    server = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    smtp_mailer(server.port, smtp_username=SMTP_USER, smtp_password=SMTP_PASSWORD).send(
        "password_reset", TO, locale="en", context=CONTEXTS["password_reset"]
    )
    assert server.received[0].auth == SMTP_USER.encode()


def test_wrong_smtp_password_names_the_settings_and_hides_the_password(
    smtp_server: Callable[..., SmtpServer], certificate: Certificate
) -> None:
    server = smtp_server(
        tls_context=certificate.server_context, require_starttls=True, authenticator=authenticator, auth_required=True
    )
    wrong = "not-the-Passw0rd"
    mailer = smtp_mailer(
        server.port,
        smtp_security="starttls",
        smtp_username=SMTP_USER,
        smtp_password=wrong,
        ssl_context=certificate.trusting_context,
    )
    with pytest.raises(MailError) as raised:
        mailer.send("password_reset", TO, locale="fr", context=CONTEXTS["password_reset"])
    message = str(raised.value)
    assert "smtp_username" in message and "smtp_password" in message
    assert wrong not in message and wrong not in repr(mailer.backend)
    assert server.received == []


def test_password_is_never_sent_in_clear_text_off_loopback() -> None:
    with pytest.raises(MailError, match=r"clear text.*\[mail\] smtp_security") as raised:
        SmtpBackend("smtp.example.org", 25, security="none", username=SMTP_USER, password=SMTP_PASSWORD)
    assert SMTP_PASSWORD not in str(raised.value)


def test_server_down_names_host_and_port() -> None:
    port = free_port()  # bound then released: nothing listens there
    mailer = smtp_mailer(port, smtp_password=SMTP_PASSWORD)
    with pytest.raises(MailError) as raised:
        mailer.send("password_reset", TO, locale="fr", context=CONTEXTS["password_reset"])
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "[mail] smtp_host" in message and "smtp_port" in message
    assert SMTP_PASSWORD not in message
    assert isinstance(raised.value, MedDAVError)


# --- dates, locales, the public surface ------------------------------------------------------------------------


def test_dates_are_written_out_in_words() -> None:
    assert format_when(WHEN, "fr") == "jeudi 26 novembre 2026 à 14:05 (UTC)"
    assert format_when(WHEN, "en") == "Thursday 26 November 2026 at 14:05 (UTC)"
    first = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    assert format_when(first, "fr") == "mardi 1er décembre 2026 à 08:00 (UTC)"
    assert format_when(first, "en") == "Tuesday 1 December 2026 at 08:00 (UTC)"
    paris = ZoneInfo("Europe/Paris")
    assert format_when(WHEN, "fr", tz=paris) == "jeudi 26 novembre 2026 à 15:05 (CET)"
    assert format_when(dt.datetime(2026, 8, 15, 23, 30, tzinfo=dt.UTC), "fr", tz=paris) == (
        "dimanche 16 août 2026 à 01:30 (CEST)"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_when(dt.datetime(2026, 1, 1), "fr")


def test_mailer_shows_dates_in_its_time_zone() -> None:
    mailer = Mailer(ConsoleBackend(), from_address=FROM, base_url=BASE_URL, tz=ZoneInfo("Europe/Paris"))
    mail = mailer.compose("second_factor_reset", TO, locale="fr", context=CONTEXTS["second_factor_reset"])
    assert "le jeudi 26 novembre 2026 à 15:05 (CET)" in parts(mail.message)[0]


@pytest.mark.parametrize(
    ("locale", "normalised"),
    [
        ("fr", "fr"),
        ("FR", "fr"),
        ("fr-FR", "fr"),
        ("fr_CA", "fr"),
        ("en", "en"),
        ("en-GB", "en"),
        ("de", "en"),
        ("", "en"),
    ],
)
def test_any_locale_but_french_gets_english(locale: str, normalised: str) -> None:
    assert normalise_locale(locale) == normalised


def test_exported_members() -> None:
    public = sorted(name for name in dir(server.mail) if not name.startswith("_") and name != "annotations")
    modules = {"console", "smtp"}
    assert sorted(server.mail.__all__) == sorted(set(public) - modules)


def test_console_is_the_default_and_smtp_is_built_from_settings(certificate: Certificate) -> None:
    mailer = Mailer.from_settings(settings(2525), base_url=BASE_URL + "/", ssl_context=certificate.trusting_context)
    backend = mailer.backend
    assert isinstance(backend, SmtpBackend)
    assert (backend.host, backend.port, backend.security, backend.timeout_seconds) == ("127.0.0.1", 2525, "none", 5)
    assert mailer.base_url == BASE_URL
    with pytest.raises(MailError, match=r"\[mail\] backend"):
        Mailer.from_settings(settings(2525, backend="pigeon"), base_url=BASE_URL)
    with pytest.raises(MailError, match=r"\[mail\] from_address"):
        Mailer.from_settings(settings(2525, from_address="not an address"), base_url=BASE_URL)
