"""The one parser of WebDAV request bodies (PROPFIND, PROPPATCH, LOCK).

No client sends a document type declaration, so none is accepted: no entity
is defined, none expanded, no external file or URL read.  libxml2's own limits
hold (no ``huge_tree``: nesting deeper than 256 levels is refused), and the
size is bounded before parsing (``[dav] max_xml_body_bytes``).  A body in
another encoding than UTF-8 is read as its declaration or byte-order mark says
(XML 1.0, section 4.3.3); bytes that are not in that encoding make it malformed.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

__all__ = ["PARSED_KEY", "XML_METHODS", "parse_xml"]

#: The methods whose request body is XML.
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "LOCK"})
#: The request environ key of the body as parsed once checked (server.dav.middleware), for whoever reads it next.
PARSED_KEY = "meddav.xml"


def parse_xml(body: bytes) -> Any:
    """A request body as an lxml element, or None when it is malformed or declares a document type."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or root.getroottree().docinfo.doctype:
        return None
    return root
