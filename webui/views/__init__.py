"""The views, one blueprint per area: public pages, signing in, the account, security, devices,
invitations, the administration of an organisation (members, group folders, audit log), and that
of the instance (background jobs)."""

from __future__ import annotations

from webui.views.account import blueprint as account
from webui.views.admin import blueprint as admin
from webui.views.api import blueprint as api
from webui.views.audit import blueprint as audit
from webui.views.auth import blueprint as auth
from webui.views.devices import blueprint as devices
from webui.views.groups import blueprint as groups
from webui.views.invite import blueprint as invite
from webui.views.jobs import blueprint as jobs
from webui.views.public import blueprint as public
from webui.views.security import blueprint as security

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (public, auth, invite, account, security, devices, admin, groups, audit, jobs, api)
