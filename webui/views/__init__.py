"""The views, one blueprint per area: public pages, signing in, the account, files and shares, security, devices,
invitations, the administration of an organisation (members, group folders, audit log), that of
the instance (background jobs), the API of shares, and the pages of a link share's recipient."""

from __future__ import annotations

from webui.views.account import blueprint as account
from webui.views.admin import blueprint as admin
from webui.views.api import blueprint as api
from webui.views.audit import blueprint as audit
from webui.views.auth import blueprint as auth
from webui.views.devices import blueprint as devices
from webui.views.files import blueprint as files
from webui.views.files import dialog
from webui.views.groups import blueprint as groups
from webui.views.invite import blueprint as invite
from webui.views.jobs import blueprint as jobs
from webui.views.public import blueprint as public
from webui.views.recipient import blueprint as recipient
from webui.views.security import blueprint as security
from webui.views.shares import blueprint as shares

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (
    public, auth, invite, account, files, dialog, shares, security, devices, admin, groups, audit, jobs, api, recipient
)  # fmt: skip
