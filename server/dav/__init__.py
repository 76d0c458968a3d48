"""The WebDAV face of MedDAV, mounted at ``/dav`` (and ``/public`` for link shares): the only package
importing wsgidav.

:func:`create_dav_app` assembles wsgidav with MedDAV's parts:

- :mod:`~server.dav.provider`   the tree as wsgidav resources, through the policy
- :mod:`~server.dav.public`     a link share at ``/public/<token>/``: its authentication and provider
- :mod:`~server.dav.locks`      locks in the database (sealed paths)
- :mod:`~server.dav.middleware` Basic authentication and request limits
- :mod:`~server.dav.get`        GET and HEAD of files, ranges included, without RequestServer
- :mod:`~server.dav.namespace`  plain MKCOL, DELETE and MOVE, without RequestServer
- :mod:`~server.dav.put`        plain PUT (Content-Length, no lock, no condition), without RequestServer
- :mod:`~server.dav.responses`  the Date header and bodiless statuses, cheaply
- :mod:`~server.dav.handlers`   PUT checks, COPY/MOVE statuses, PROPFIND propname
- :mod:`~server.dav.errors`     MedDAV errors -> HTTP statuses

wsgidav's directory browser, its anonymous ``/:dir_browser`` share, digest
authentication, CORS and its request log (which prints paths) are all left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from wsgidav import util as wsgidav_util
from wsgidav.dav_error import DAVError
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from server.dav.get import FileGet
from server.dav.locks import DatabaseLockStorage
from server.dav.middleware import BAD_PATH_KEY, INSTANCE_KEY, BasicAuth, ErrorShield, RequestLimits
from server.dav.namespace import NamespaceOps
from server.dav.provider import MedDAVProvider
from server.dav.public import ShareAuth, ShareProvider
from server.dav.put import FilePut
from server.errors import NotFound

if TYPE_CHECKING:
    from server.instance import Instance
    from server.tree import Tree

__all__ = ["MOUNT_PATH", "PUBLIC_PATH", "create_dav_app", "create_public_app"]

MOUNT_PATH = "/dav"
#: Where link shares are served over WebDAV: ``/public/<token>/``.
PUBLIC_PATH = "/public"
#: Bytes read from a request body or a file per step (4 segments of the blob format).
BLOCK_SIZE = 256 * 1024


def create_dav_app(instance: Instance) -> Any:
    """The wsgidav application serving every user's tree under ``/dav``."""
    return _PathGuard(
        WsgiDAVApp(_config(instance, MedDAVProvider(instance.tree, instance.shares), MOUNT_PATH, BasicAuth))
    )


def create_public_app(instance: Instance) -> Any:
    """The wsgidav application serving link shares under ``/public/<token>/`` (:mod:`server.dav.public`)."""
    return _PathGuard(WsgiDAVApp(_config(instance, ShareProvider(instance.tree), PUBLIC_PATH, ShareAuth)))


def _config(instance: Instance, provider: MedDAVProvider, mount_path: str, authentication: type) -> dict[str, Any]:
    # Error pages name the software, not its version (what wsgidav's own CLI does
    # for suppress_version_info, which the library itself does not read).
    wsgidav_util.public_wsgidav_info = "MedDAV"
    return {
        "provider_mapping": {"/": provider},
        "mount_path": mount_path,
        "lock_storage": DatabaseLockStorage(
            instance.db,
            instance.lock_sealer,
            max_timeout=instance.settings.dav.max_lock_timeout_seconds,
            exists=_lock_target_exists(instance.tree),
        ),
        "property_manager": None,  # dead properties are handled by the provider, in the database
        "middleware_stack": [
            ErrorPrinter,
            ErrorShield,
            authentication,
            RequestLimits,
            FileGet,
            NamespaceOps,
            FilePut,
            RequestResolver,
        ],
        "http_authenticator": {"accept_basic": False, "accept_digest": False, "default_to_digest": False},
        "dir_browser": {"enable": False},
        "block_size": BLOCK_SIZE,
        "verbose": 1,
        "logging": {"enable": False},
        "add_header_MS_Author_Via": True,
        INSTANCE_KEY: instance,
    }


class _PathGuard:
    """Mark a path that is not UTF-8 or climbs out of the mount (``/dav/%2e%2e/x``), for a 400 after
    authentication (:class:`~server.dav.middleware.RequestLimits`): so the attempt is audited as its
    requester's (a link's token, the first segment, is kept for that), and someone without credentials
    learns nothing from it.

    wsgidav would refuse such a path before its middleware runs (an UnicodeDecodeError, a 500; or an error
    raised inside a generator, whose page is lost: a Content-Length and no body).  The marked request goes
    on as a request for the mount's root or its first segment, which nothing reaches before the refusal.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            path = wsgidav_util.re_encode_wsgi(environ.get("PATH_INFO", ""))
            if path != "*":
                wsgidav_util.normalize_path(unquote(path))
        except (UnicodeDecodeError, DAVError):
            environ[BAD_PATH_KEY] = True
            environ["PATH_INFO"] = _first_segment(environ.get("PATH_INFO", ""))
        return self.app(environ, start_response)


def _lock_target_exists(tree: Tree) -> Callable[[str], bool]:
    """Whether a lock URL (``/<root id>/<path>``, ``/g<org>.<group root id>/<path>``) names an item of the
    tree; a URL of another form (a link's space) is taken as existing."""

    def exists(ref_url: str) -> bool:
        space, _, inner = unquote(ref_url).strip("/").partition("/")
        number = space.rpartition(".")[2]
        if not number.isdigit():
            return True
        try:
            return tree.resolve(int(number), [name for name in inner.split("/") if name]) is not None
        except NotFound:
            return False

    return exists


def _first_segment(path_info: str) -> str:
    """``/<first segment>/`` of a refused path when that segment is a plain name (a link's token, which
    its authentication needs), else ``/``."""
    segment = path_info.lstrip("/").split("/", 1)[0]
    try:
        plain = segment.encode("latin-1").decode("utf-8") not in ("", ".", "..") and "\\" not in segment
    except UnicodeError:
        plain = False
    return f"/{segment}/" if plain else "/"
