"""What every view needs from the request: the instance, the client's address, the audit log.

The instance is stored in the Flask application (``app.extensions["meddav"]``)
by :func:`webui.create_app`; views reach it through :func:`instance`, never
through a global, so two applications (two test servers) never mix.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from flask import current_app, request

from server.audit import AuditEvent
from server.auth import client_address
from server.errors import MedDAVError

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["EXTENSION", "address", "dav_url", "instance", "record", "send_mail_later", "user_agent"]

logger = logging.getLogger(__name__)

EXTENSION = "meddav"


def instance() -> Instance:
    """The instance this application serves."""
    return cast("Instance", current_app.extensions[EXTENSION])


def address() -> str:
    """The client's address (behind ``[server] trusted_proxies`` only)."""
    return client_address(request.environ, instance().settings.server.trusted_proxies)


def user_agent() -> str:
    return request.headers.get("User-Agent", "")[:200]


def record(
    action: str,
    outcome: str,
    *,
    principal: str = "-",
    user_id: int | None = None,
    org_id: int | None = None,
    status: int | None = None,
    target_id: int | None = None,
    node_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Append a web event to the audit log.  Never give it a password, a code, a token or a cookie."""
    instance().audit.record(
        AuditEvent(
            surface="web",
            action=action,
            outcome=outcome,
            principal=principal,
            user_id=user_id,
            org_id=org_id,
            address=address(),
            status=status,
            target_id=target_id,
            node_id=node_id,
            detail=detail,
        )
    )


def dav_url() -> str:
    """The WebDAV address to give drives: the public one when set, else the one this page was reached at."""
    return (instance().settings.server.public_url or request.host_url.rstrip("/")) + "/dav/"


def send_mail_later(template: str, to: str, *, locale: str, context: dict[str, Any]) -> None:
    """Send a mail from a thread: a slow or failing mail server never delays or breaks the page."""
    mailer = instance().mailer

    def send() -> None:
        try:
            mailer.send(template, to, locale=locale, context=context)
        except (MedDAVError, ValueError, TypeError):
            logger.exception("mail %s not sent", template)

    threading.Thread(target=send, name=f"meddav-mail-{template}", daemon=True).start()
