"""PROPFIND with Depth 0 or 1, rendered directly.

File managers list folders with PROPFIND Depth 1 all day long.  wsgidav
answers it by asking every member for every property through a chain of
generic calls (names, then values, each getter several times, a DAVError per
missing property) and building one lxml tree; this module renders the same
multistatus from the entries and dead properties the tree already loaded
(one query each), as text.  It answers ``<allprop/>``, ``<prop>`` and
``<propname/>`` (and an empty body, which is allprop); anything else (a body
it does not understand, ``<include>``, a WebDAV ``If`` header, Depth
infinity) is left to wsgidav, which stays the reference for the semantics:
litmus's props suite runs against this code.

Properties served, as wsgidav serves them: resourcetype, creationdate,
getcontentlength and getcontenttype and getetag (files), getlastmodified,
displayname, quota-used-bytes and quota-available-bytes (folders),
lockdiscovery, supportedlock, and the dead properties.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree
from wsgidav import util

from server.dav.provider import FileResource, FolderResource, MedDAVProvider, _Resource
from server.dav.responses import http_date
from server.dav.xmlbody import PARSED_KEY, parse_xml

__all__ = ["answer_propfind"]

_OK = "HTTP/1.1 200 OK"
_NOT_FOUND = "HTTP/1.1 404 Not Found"
_SUPPORTED_LOCK = (
    "<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry></D:supportedlock>"
)

Mode = tuple[str, list[str]]  # ("allprop" | "propname" | "prop", requested names)


def parse_request(body: bytes, parsed: Any = None) -> Mode | None:
    """The PROPFIND mode and names, or None when wsgidav should decide; ``parsed``: the body, already parsed."""
    if not body.strip():
        return "allprop", []
    root = parsed if parsed is not None else parse_xml(body)
    if root is None or root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    child = root[0]
    if child.tag == "{DAV:}allprop":
        return "allprop", []
    if child.tag in ("{DAV:}propname", "{DAV:}name"):
        return "propname", []
    if child.tag == "{DAV:}prop":
        names = [p.tag for p in child if isinstance(p.tag, str)]
        return "prop", names
    return None


def _element(name: str, content: str | None) -> str:
    """``{ns}local`` as an element, with a namespace declaration unless it is DAV:."""
    namespace, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
    if namespace == "DAV:":
        tag, declaration = f"D:{local}", ""
    elif namespace:
        tag, declaration = f"X:{local}", f' xmlns:X="{escape(namespace, {chr(34): "&quot;"})}"'
    else:
        tag, declaration = local, ""
    if content is None or content == "":
        return f"<{tag}{declaration}/>"
    return f"<{tag}{declaration}>{content}</{tag}>"


class _Properties:
    """The properties of one resource, as XML fragments, computed on demand."""

    def __init__(self, resource: _Resource, lock_xml: Callable[[_Resource], str] | None) -> None:
        self.resource = resource
        self.lock_xml = lock_xml

    def live(self) -> dict[str, Callable[[], str]]:
        r = self.resource
        entry = r.entry
        props: dict[str, Callable[[], str]] = {
            "{DAV:}resourcetype": lambda: (
                "<D:resourcetype><D:collection/></D:resourcetype>" if entry.is_dir else "<D:resourcetype/>"
            ),
            "{DAV:}creationdate": lambda: _element("{DAV:}creationdate", util.get_rfc3339_time(entry.ctime)),
        }
        if isinstance(r, FolderResource) and r.reports_quota:
            folder = r
            props["{DAV:}quota-used-bytes"] = lambda: _element("{DAV:}quota-used-bytes", str(folder.get_used_bytes()))
            props["{DAV:}quota-available-bytes"] = lambda: _element(
                "{DAV:}quota-available-bytes", str(folder.get_available_bytes())
            )
        elif isinstance(r, FileResource):
            file = r
            props["{DAV:}getcontentlength"] = lambda: _element("{DAV:}getcontentlength", str(entry.size))
            props["{DAV:}getcontenttype"] = lambda: _element("{DAV:}getcontenttype", escape(file.get_content_type()))
        props["{DAV:}getlastmodified"] = lambda: _element("{DAV:}getlastmodified", util.get_rfc1123_time(entry.mtime))
        props["{DAV:}displayname"] = lambda: _element("{DAV:}displayname", escape(r.get_display_name()))
        if not entry.is_dir:
            props["{DAV:}getetag"] = lambda: _element("{DAV:}getetag", entry.etag)
        if self.lock_xml is not None:
            lock_xml = self.lock_xml
            props["{DAV:}lockdiscovery"] = lambda: lock_xml(r)
            props["{DAV:}supportedlock"] = lambda: _SUPPORTED_LOCK
        return props

    def dead(self) -> dict[str, bytes]:
        return self.resource._dead_properties()


def _response(href: str, found: list[str], missing: list[str]) -> str:
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    if found:
        parts.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop><D:status>{_OK}</D:status></D:propstat>")
    if missing:
        parts.append(f"<D:propstat><D:prop>{''.join(missing)}</D:prop><D:status>{_NOT_FOUND}</D:status></D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)


def render(resources: Iterable[_Resource], mode: Mode, lock_xml: Callable[[_Resource], str] | None) -> bytes:
    """The multistatus body for ``resources`` (self first, then members)."""
    kind, names = mode
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
    for resource in resources:
        props = _Properties(resource, lock_xml)
        live = props.live()
        dead = props.dead()
        found: list[str] = []
        missing: list[str] = []
        if kind == "allprop":
            found.extend(render_live() for render_live in live.values())
            found.extend(value.decode() for value in dead.values())
        elif kind == "propname":
            found.extend(_element(name, None) for name in [*live, *dead])
        else:
            for name in names:
                if name in live:
                    found.append(live[name]())
                elif name in dead:
                    found.append(dead[name].decode())
                else:
                    missing.append(_element(name, None))
        out.append(_response(resource.get_href(), found, missing))
    out.append("</D:multistatus>")
    return "".join(out).encode("utf-8")


def answer_propfind(provider: MedDAVProvider, environ: dict[str, Any], start_response: Any) -> list[bytes] | None:
    """The answer to a PROPFIND, or None to let wsgidav answer it."""
    depth = environ.get("HTTP_DEPTH", "infinity").strip().lower()
    if depth not in ("0", "1") or "HTTP_IF" in environ:
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgidav.all_input_read"] = 1
    mode = parse_request(body, environ.get(PARSED_KEY))
    if mode is None:
        environ["wsgi.input"] = io.BytesIO(body)
        return None
    resource = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if resource is None:
        return None  # wsgidav answers 404
    resources: list[_Resource] = [resource]
    if depth == "1" and isinstance(resource, FolderResource):
        resources.extend(resource.get_member_list())
    lock_xml = _lock_renderer(provider, environ)
    payload = render(resources, mode, lock_xml)
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            ("Date", http_date()),
        ],
    )
    return [payload]


def _lock_renderer(provider: MedDAVProvider, environ: dict[str, Any]) -> Callable[[_Resource], str] | None:
    """How to render lockdiscovery: empty when the tree holds no lock (the usual case)."""
    lock_manager = provider.lock_manager
    if lock_manager is None:
        return None
    if not provider.holds_locks(environ):
        return lambda resource: "<D:lockdiscovery/>"

    def render_locks(resource: _Resource) -> str:
        if not lock_manager.get_url_lock_list(resource.get_ref_url()):
            return "<D:lockdiscovery/>"
        element = resource.get_property_value("{DAV:}lockdiscovery")
        rendered: str = etree.tostring(element).decode()
        return rendered

    return render_locks
