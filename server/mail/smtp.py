"""The ``smtp`` backend: hands each mail to an SMTP server with :mod:`smtplib`.

``[mail] smtp_security`` chooses how the connection is protected:

- ``"tls"``: implicit TLS from the first byte (:class:`smtplib.SMTP_SSL`, usually port 465);
- ``"starttls"``: a plain connection upgraded with STARTTLS before anything else is
  said (usually port 587); a server that does not offer STARTTLS is an error, never
  a silent fallback to clear text;
- ``"none"``: clear text, for a relay on the same host (loopback) only.  MedDAV
  refuses to send SMTP credentials in clear text to any other host, and logs a
  warning at start when such a relay is not on loopback.

Certificates are verified against the system's trusted authorities, host name
included (:func:`ssl.create_default_context`); a test or an operator with a
private authority passes its own ``ssl_context``.  One connection per mail: MedDAV
sends few mails (invitations, resets, alerts) and keeps no idle connection open.
"""

from __future__ import annotations

import logging
import smtplib
import ssl

from server.config import is_loopback
from server.mail._base import BaseMailBackend, MailError, OutgoingMail

__all__ = ["SECURITY_MODES", "SmtpBackend"]

logger = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "tls", "none")


class SmtpBackend(BaseMailBackend):
    """Sends mails through an SMTP server (see the module docstring for the security modes)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        timeout_seconds: float = 10,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise MailError(f"[mail] smtp_security = {security!r} is not known; use one of {', '.join(SECURITY_MODES)}")
        if security == "none" and not is_loopback(host):
            if username:
                raise MailError(
                    f"refusing to send the SMTP password in clear text to {host}: set [mail] smtp_security to "
                    '"starttls" or "tls", or use a relay on loopback'
                )
            logger.warning(
                "mail goes to a non-loopback SMTP server without encryption",
                extra={"fields": {"smtp_host": host, "smtp_port": port, "setting": "[mail] smtp_security"}},
            )
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.timeout_seconds = timeout_seconds
        self._ssl_context = ssl_context

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpBackend({self.host!r}, {self.port}, security={self.security!r}, username={self.username!r})"

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_seconds, context=self._context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)

    def deliver(self, mail: OutgoingMail) -> None:
        stage = "connect"
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    stage = "starttls"
                    smtp.ehlo()
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.username:
                    stage = "login"
                    smtp.login(self.username, self._password)
                stage = "send"
                smtp.send_message(mail.message)
        except OSError as exc:  # smtplib's and ssl's errors are all OSErrors
            raise self._explain(exc, stage) from exc
        logger.info(
            "mail sent",
            extra={
                "fields": {
                    "template": mail.template,
                    "locale": mail.locale,
                    "message_id": str(mail.message["Message-ID"]),
                }
            },
        )

    def _explain(self, exc: OSError, stage: str) -> MailError:
        """A :class:`MailError` naming the setting to check.  Never mentions the password."""
        where = f"the SMTP server at {self.host}:{self.port}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return MailError(
                f"the certificate of {where} could not be verified ({exc.verify_message}); check [mail] smtp_host "
                "(it must be the name on the certificate) and that the certificate is issued by an authority "
                "this system trusts"
            )
        if isinstance(exc, ssl.SSLError):
            return MailError(
                f"TLS with {where} failed ({exc.reason or exc}); check [mail] smtp_security "
                '("tls" for implicit TLS, usually port 465; "starttls", usually port 587) and smtp_port'
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and stage == "starttls":
            return MailError(
                f"{where} does not offer STARTTLS; check [mail] smtp_security and smtp_port "
                '("tls" for port 465; "none" only for a relay on loopback)'
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and stage == "login":
            return MailError(
                f"{where} does not offer authentication on this connection; check [mail] smtp_security "
                "(servers offer AUTH only over TLS) or leave smtp_username empty"
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailError(
                f"{where} refused the login of [mail] smtp_username = {self.username!r} "
                f"({exc.smtp_code}); check smtp_username and smtp_password"
            )
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return MailError(f"{where} refused the sender ({exc.smtp_code}); check [mail] from_address")
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = ", ".join(str(code) for code, _ in exc.recipients.values())
            return MailError(f"{where} refused the recipient address ({codes})")
        if isinstance(exc, smtplib.SMTPResponseException):
            return MailError(
                f"{where} answered {exc.smtp_code} during {stage}; check [mail] smtp_host, smtp_port and smtp_security"
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return MailError(
                f"{where} closed the connection during {stage}; check [mail] smtp_port and smtp_security "
                '("tls" for implicit TLS, "starttls" for a plain port)'
            )
        if isinstance(exc, TimeoutError):
            return MailError(
                f"{where} did not answer within {self.timeout_seconds:g} s during {stage}; check [mail] smtp_host "
                "and smtp_port (and smtp_timeout_seconds)"
            )
        if isinstance(exc, smtplib.SMTPException):
            return MailError(f"sending through {where} failed during {stage} ({type(exc).__name__})")
        reason = exc.strerror or type(exc).__name__
        return MailError(f"cannot reach {where} ({reason}); check [mail] smtp_host and smtp_port")
