"""The views, one blueprint per area: public pages, signing in, the account, security, devices."""

from __future__ import annotations

from webui.views.account import blueprint as account
from webui.views.auth import blueprint as auth
from webui.views.devices import blueprint as devices
from webui.views.public import blueprint as public
from webui.views.security import blueprint as security

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (public, auth, account, security, devices)
