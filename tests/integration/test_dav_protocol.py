"""WebDAV behaviour of the real server, spoken to over HTTP.

Includes each point where stock wsgidav 4.4 goes wrong (../shared/FACTS.md)
and MedDAV must not: unbounded and chunked XML bodies, Depth: infinity,
the anonymous directory-browser share, multi-range answers, malformed Basic
headers, PUT without a length, X-Expected-Entity-Length.
"""

from __future__ import annotations

import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.testing import LiveServer, TestInstance
from tests.helpers import basic, listing, names_in, propfind, raw_request, status_of

# -- basics -------------------------------------------------------------------------


def test_options_announces_class_2(dav: httpx.Client) -> None:
    response = dav.request("OPTIONS", "")
    assert response.status_code == 200
    assert response.headers["DAV"] == "1,2"
    assert "PROPFIND" in response.headers["Allow"] and "LOCK" in response.headers["Allow"]


def test_put_get_head_and_etags(dav: httpx.Client) -> None:
    first = dav.put("doc.txt", content=b"version 1")
    assert first.status_code == 201
    etag1 = first.headers["ETag"]
    get = dav.get("doc.txt")
    assert (get.status_code, get.content, get.headers["ETag"]) == (200, b"version 1", etag1)
    head = dav.head("doc.txt")
    assert head.headers["Content-Length"] == "9" and head.content == b""
    second = dav.put("doc.txt", content=b"version 2!")
    assert second.status_code == 204
    assert second.headers["ETag"] != etag1
    assert dav.get("doc.txt").content == b"version 2!"


def test_empty_file(dav: httpx.Client) -> None:
    assert dav.put("empty", content=b"").status_code == 201
    response = dav.get("empty")
    assert (response.status_code, response.content) == (200, b"")


def test_mkcol_and_nested_put(dav: httpx.Client) -> None:
    assert dav.request("MKCOL", "a/").status_code == 201
    assert dav.request("MKCOL", "a/").status_code == 405
    assert dav.request("MKCOL", "x/y/").status_code == 409
    assert dav.put("a/b.txt", content=b"b").status_code == 201
    assert dav.put("missing/b.txt", content=b"b").status_code == 409
    assert names_in(dav, "a/") == {"b.txt"}


def test_delete_folder_with_content(dav: httpx.Client) -> None:
    dav.request("MKCOL", "d/")
    dav.put("d/1", content=b"1")
    dav.request("MKCOL", "d/e/")
    dav.put("d/e/2", content=b"2")
    assert dav.delete("d/").status_code == 204
    assert dav.get("d/1").status_code == 404
    assert dav.request("PROPFIND", "d/", headers={"Depth": "0"}).status_code == 404


# -- conditional requests --------------------------------------------------------------


def test_if_match_protects_against_lost_updates(dav: httpx.Client) -> None:
    etag = dav.put("f", content=b"mine").headers["ETag"]
    assert dav.put("f", content=b"theirs", headers={"If-Match": '"stale"'}).status_code == 412
    assert dav.get("f").content == b"mine"
    assert dav.put("f", content=b"next", headers={"If-Match": etag}).status_code == 204
    assert dav.get("f").content == b"next"


def test_if_match_on_a_missing_resource_fails(dav: httpx.Client) -> None:
    assert dav.put("new", content=b"x", headers={"If-Match": "*"}).status_code == 412
    assert dav.get("new").status_code == 404


def test_if_none_match(dav: httpx.Client) -> None:
    assert dav.put("n", content=b"1", headers={"If-None-Match": "*"}).status_code == 201
    assert dav.put("n", content=b"2", headers={"If-None-Match": "*"}).status_code == 412
    etag = dav.get("n").headers["ETag"]
    assert dav.get("n", headers={"If-None-Match": etag}).status_code == 304


# -- PUT bodies ----------------------------------------------------------------------------


def test_put_without_length_is_refused(live_server: LiveServer, instance_dir: TestInstance) -> None:
    answer = raw_request(
        live_server.url,
        "PUT /dav/nolength.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: {basic(instance_dir.user, instance_dir.password)}",
        b"some body",
        close_after=True,
    )
    assert status_of(answer) == 411
    with httpx.Client(auth=(instance_dir.user, instance_dir.password)) as c:
        assert c.get(live_server.dav_url + "nolength.txt").status_code == 404


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_chunked_put(dav: httpx.Client) -> None:
    data = os.urandom(300_000)
    assert dav.put("chunked.bin", content=_chunks(data)).status_code == 201
    assert dav.get("chunked.bin").content == data


def test_finder_expected_entity_length_is_honoured(dav: httpx.Client) -> None:
    data = os.urandom(100_000)
    ok = dav.put("finder.bin", content=_chunks(data), headers={"X-Expected-Entity-Length": str(len(data))})
    assert ok.status_code == 201
    assert dav.get("finder.bin").content == data
    wrong = dav.put("liar.bin", content=_chunks(data), headers={"X-Expected-Entity-Length": "10"})
    assert wrong.status_code == 400
    assert dav.get("liar.bin").status_code == 404
    short = dav.put("short.bin", content=_chunks(data), headers={"X-Expected-Entity-Length": str(len(data) + 1)})
    assert short.status_code == 400
    assert dav.get("short.bin").status_code == 404
    assert dav.put("bad.bin", content=_chunks(data), headers={"X-Expected-Entity-Length": "ten"}).status_code == 400


def test_body_shorter_than_content_length_is_not_committed(
    live_server: LiveServer, instance_dir: TestInstance, dav: httpx.Client
) -> None:
    dav.put("truncated.bin", content=b"old content")
    raw_request(
        live_server.url,
        "PUT /dav/truncated.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        f"Authorization: {basic(instance_dir.user, instance_dir.password)}",
        b"x" * 1000,
        close_after=True,
        timeout=5,
    )
    assert dav.get("truncated.bin").content == b"old content"


# -- XML bodies ----------------------------------------------------------------------------


def test_oversize_xml_body_gets_413(dav: httpx.Client) -> None:
    body = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
        + b"<D:getetag/>" * 200_000
        + b"</D:prop></D:propfind>"
    )
    assert len(body) > 1024 * 1024
    assert propfind(dav, "", body=body).status_code == 413
    assert dav.request("PROPFIND", "", headers={"Depth": "1"}, content=_chunks(body)).status_code == 413
    assert dav.request("PROPPATCH", "", content=body).status_code == 413


def test_chunked_xml_body_is_read_not_ignored(dav: httpx.Client) -> None:
    dav.put("p.txt", content=b"p")
    body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    response = dav.request("PROPFIND", "p.txt", headers={"Depth": "0"}, content=_chunks(body, 7))
    assert response.status_code == 207
    assert b"getetag" in response.content and b"getcontentlength" not in response.content


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&x;</D:getetag></D:prop></D:propfind>',
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:x>&d;&d;&d;&d;</D:x></D:prop></D:propfind>',
        b"<not xml",
    ],
)
def test_hostile_xml_gets_a_4xx_and_reveals_nothing(dav: httpx.Client, body: bytes) -> None:
    response = propfind(dav, "", depth="0", body=body)
    assert response.status_code < 500
    assert b"root:" not in response.content


def test_propfind_depth_infinity_is_refused(dav: httpx.Client) -> None:
    for headers in ({"Depth": "infinity"}, {}):
        response = dav.request("PROPFIND", "", headers=headers)
        assert response.status_code == 403
        assert b"propfind-finite-depth" in response.content


def test_propfind_depth_infinity_can_be_allowed(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    inst = make_test_instance({"dav": {"allow_infinite_depth": True}})
    server = start_server(inst)
    with httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password)) as c:
        c.request("MKCOL", "deep/")
        c.put("deep/inner.txt", content=b"x")
        response = c.request("PROPFIND", "", headers={"Depth": "infinity"})
        assert response.status_code == 207 and b"inner.txt" in response.content


def test_propfind_returns_the_live_properties(dav: httpx.Client) -> None:
    dav.put("live.txt", content=b"12345")
    (response,) = [r for href, r in listing(dav, "").items() if href.endswith("live.txt")]
    props = {child.tag: child.text for child in response.find("{DAV:}propstat/{DAV:}prop")}
    assert props["{DAV:}getcontentlength"] == "5"
    assert props["{DAV:}getcontenttype"] == "text/plain"
    assert props["{DAV:}getetag"]
    assert props["{DAV:}getlastmodified"]
    root = listing(dav, "")["/dav/"]
    quota = {c.tag: c.text for c in root.find("{DAV:}propstat/{DAV:}prop")}
    assert quota["{DAV:}quota-used-bytes"] == "5"
    assert int(quota["{DAV:}quota-available-bytes"] or 0) > 0


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic " + "bm9jb2xvbg==",
        "Basic",
        "Bearer abc",
        "Basic " + "YWRtaW46d3Jvbmc=",
        "Basic " + "Ym9iOng=",
    ],
)
def test_bad_credentials_get_401_not_500(live_server: LiveServer, header: str) -> None:
    response = httpx.get(live_server.dav_url, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="MedDAV"')


def test_no_anonymous_directory_browser(live_server: LiveServer, instance_dir: TestInstance) -> None:
    assert httpx.get(live_server.dav_url + ":dir_browser/favicon.ico").status_code == 401
    authed = httpx.get(
        live_server.dav_url + ":dir_browser/favicon.ico", auth=(instance_dir.user, instance_dir.password)
    )
    assert authed.status_code == 404


def test_collections_are_not_rendered_as_html(dav: httpx.Client) -> None:
    assert dav.get("").status_code == 403


# -- ranges ----------------------------------------------------------------------------------


@pytest.fixture
def ranged(dav: httpx.Client) -> bytes:
    data = os.urandom(300_000)  # several segments of the blob format
    dav.put("ranged.bin", content=data)
    return data


def test_single_and_suffix_ranges(dav: httpx.Client, ranged: bytes) -> None:
    response = dav.get("ranged.bin", headers={"Range": "bytes=70000-140000"})
    assert response.status_code == 206
    assert response.content == ranged[70000:140001]
    assert response.headers["Content-Range"] == f"bytes 70000-140000/{len(ranged)}"
    assert dav.get("ranged.bin", headers={"Range": "bytes=-100"}).content == ranged[-100:]
    assert dav.get("ranged.bin", headers={"Range": "bytes=299990-"}).content == ranged[299990:]


def _parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    boundary = re.search(r"boundary=(\S+)", response.headers["Content-Type"])
    assert boundary is not None
    out = []
    for part in response.content.split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        content_range = re.search(rb"Content-Range: bytes (\S+)", head)
        assert content_range is not None
        out.append((content_range.group(1).decode(), body[:-2]))
    assert response.content.endswith(b"--" + boundary.group(1).encode() + b"--\r\n")
    return out


def test_multiple_ranges_get_a_multipart_answer(dav: httpx.Client, ranged: bytes) -> None:
    response = dav.get("ranged.bin", headers={"Range": "bytes=0-9,100000-100009,-5"})
    assert response.status_code == 206
    assert response.headers["Content-Type"].startswith("multipart/byteranges")
    assert int(response.headers["Content-Length"]) == len(response.content)
    size = len(ranged)
    assert _parts(response) == [
        (f"0-9/{size}", ranged[:10]),
        (f"100000-100009/{size}", ranged[100000:100010]),
        (f"{size - 5}-{size - 1}/{size}", ranged[-5:]),
    ]


def test_overlapping_ranges_are_merged(dav: httpx.Client, ranged: bytes) -> None:
    response = dav.get("ranged.bin", headers={"Range": "bytes=0-99,50-149"})
    assert response.status_code == 206
    assert response.content == ranged[:150]


def test_too_many_ranges_get_the_whole_file_once(dav: httpx.Client, ranged: bytes) -> None:
    spec = ",".join(f"{i * 1000}-{i * 1000 + 9}" for i in range(200))
    response = dav.get("ranged.bin", headers={"Range": f"bytes={spec}"})
    assert response.status_code == 200
    assert response.content == ranged


def test_unsatisfiable_range_gets_416(dav: httpx.Client, ranged: bytes) -> None:
    response = dav.get("ranged.bin", headers={"Range": "bytes=900000-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(ranged)}"


# -- quota -----------------------------------------------------------------------------------


@pytest.fixture
def quota_dav(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[tuple[httpx.Client, LiveServer]]:
    inst = make_test_instance({"storage": {"default_quota_bytes": 100_000}})
    server = start_server(inst)
    with httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password)) as client:
        yield client, server


def _blob_files(server: LiveServer) -> list[str]:
    root = server.settings.storage.blob_dir
    return [name for _, _, files in os.walk(root) for name in files]


def test_quota_exceeded_gets_507_and_stores_nothing(quota_dav: tuple[httpx.Client, LiveServer]) -> None:
    dav, server = quota_dav
    assert dav.put("big.bin", content=os.urandom(150_000)).status_code == 507
    assert dav.put("big2.bin", content=_chunks(os.urandom(150_000))).status_code == 507
    assert dav.get("big.bin").status_code == 404 and dav.get("big2.bin").status_code == 404
    assert _blob_files(server) == []
    user = server.instance.accounts.get("admin")
    assert user.used_bytes == 0


def test_quota_counts_replaced_bytes(quota_dav: tuple[httpx.Client, LiveServer]) -> None:
    dav, server = quota_dav
    assert dav.put("f.bin", content=os.urandom(60_000)).status_code == 201
    assert dav.put("g.bin", content=os.urandom(60_000)).status_code == 507
    assert dav.put("f.bin", content=os.urandom(90_000)).status_code == 204  # replaces 60,000
    assert dav.request("COPY", "f.bin", headers={"Destination": server.dav_url + "h.bin"}).status_code == 507
    dav.delete("f.bin")
    assert server.instance.accounts.get("admin").used_bytes == 0


# -- copy, move, properties -----------------------------------------------------------------------


PROPPATCH = (
    b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:">'
    b"<D:set><D:prop><Z:note>%s</Z:note></D:prop></D:set></D:propertyupdate>"
)


def _note(dav: httpx.Client, path: str) -> str | None:
    body = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop><Z:note/></D:prop></D:propfind>'
    )
    response = propfind(dav, path, depth="0", body=body)
    for propstat in ET.fromstring(response.content).iter("{DAV:}propstat"):
        if "200" in (propstat.findtext("{DAV:}status") or ""):
            note = propstat.find("{DAV:}prop/{urn:x-test:}note")
            if note is not None:
                return note.text or ""
    return None


def test_copy_and_move_statuses_and_content(dav: httpx.Client, live_server: LiveServer) -> None:
    dav.put("src.txt", content=b"source")
    dav.request("PROPPATCH", "src.txt", content=PROPPATCH % b"kept")
    assert dav.request("COPY", "src.txt", headers={"Destination": live_server.dav_url + "copy.txt"}).status_code == 201
    assert dav.request("COPY", "src.txt", headers={"Destination": live_server.dav_url + "copy.txt"}).status_code == 204
    assert dav.get("copy.txt").content == b"source"
    assert _note(dav, "copy.txt") == "kept"
    assert (
        dav.request("MOVE", "copy.txt", headers={"Destination": live_server.dav_url + "moved.txt"}).status_code == 201
    )
    assert dav.get("copy.txt").status_code == 404
    assert _note(dav, "moved.txt") == "kept"
    overwrite_f = {"Destination": live_server.dav_url + "moved.txt", "Overwrite": "F"}
    assert dav.request("MOVE", "src.txt", headers=overwrite_f).status_code == 412
    assert dav.request("MOVE", "src.txt", headers={"Destination": live_server.dav_url + "moved.txt"}).status_code == 204
    assert dav.get("moved.txt").content == b"source"


def test_copy_folder_deep_and_shallow(dav: httpx.Client, live_server: LiveServer) -> None:
    dav.request("MKCOL", "tree/")
    dav.request("MKCOL", "tree/sub/")
    dav.put("tree/sub/leaf.txt", content=b"leaf")
    assert dav.request("COPY", "tree/", headers={"Destination": live_server.dav_url + "deep/"}).status_code == 201
    assert dav.get("deep/sub/leaf.txt").content == b"leaf"
    shallow = {"Destination": live_server.dav_url + "shallow/", "Depth": "0"}
    assert dav.request("COPY", "tree/", headers=shallow).status_code == 201
    assert names_in(dav, "shallow/") == set()


def test_move_into_itself_is_refused(dav: httpx.Client, live_server: LiveServer) -> None:
    dav.request("MKCOL", "loop/")
    dav.request("MKCOL", "loop/child/")
    response = dav.request("MOVE", "loop/", headers={"Destination": live_server.dav_url + "loop/child/loop/"})
    assert response.status_code in (403, 409)
    assert names_in(dav, "loop/") == {"child"}


def test_destination_on_another_host_is_refused(dav: httpx.Client) -> None:
    dav.put("here.txt", content=b"x")
    response = dav.request("COPY", "here.txt", headers={"Destination": "http://elsewhere.example/dav/x.txt"})
    assert response.status_code == 502


def test_dead_properties_set_read_remove(dav: httpx.Client) -> None:
    dav.put("props.txt", content=b"x")
    assert dav.request("PROPPATCH", "props.txt", content=PROPPATCH % b"hello").status_code == 207
    assert _note(dav, "props.txt") == "hello"
    remove = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:">'
        b"<D:remove><D:prop><Z:note/></D:prop></D:remove></D:propertyupdate>"
    )
    assert dav.request("PROPPATCH", "props.txt", content=remove).status_code == 207
    assert _note(dav, "props.txt") is None


def test_protected_properties_cannot_be_set(dav: httpx.Client) -> None:
    dav.put("prot.txt", content=b"x")
    body = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        b"<D:getetag>forged</D:getetag></D:prop></D:set></D:propertyupdate>"
    )
    response = dav.request("PROPPATCH", "prot.txt", content=body)
    assert response.status_code == 207 and b"403" in response.content


# -- locks --------------------------------------------------------------------------------


LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>Dr Martin's laptop</D:owner></D:lockinfo>"
)


def test_locks_survive_a_restart(instance_dir: TestInstance) -> None:
    auth = (instance_dir.user, instance_dir.password)
    with LiveServer(instance_dir.config_path) as server, httpx.Client(base_url=server.dav_url, auth=auth) as c:
        c.put("locked.txt", content=b"v1")
        response = c.request("LOCK", "locked.txt", headers={"Timeout": "Second-3600"}, content=LOCKINFO)
        assert response.status_code == 200
        token = response.headers["Lock-Token"].strip("<>")
    with LiveServer(instance_dir.config_path) as server, httpx.Client(base_url=server.dav_url, auth=auth) as c:
        assert c.put("locked.txt", content=b"v2").status_code == 423
        assert c.put("locked.txt", content=b"v2", headers={"If": f"(<{token}>)"}).status_code == 204
        assert c.request("UNLOCK", "locked.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 204
        assert c.put("locked.txt", content=b"v3").status_code == 204


def test_lock_timeouts_are_capped(dav: httpx.Client) -> None:
    dav.put("t.txt", content=b"x")
    response = dav.request("LOCK", "t.txt", headers={"Timeout": "Infinite"}, content=LOCKINFO)
    assert response.status_code == 200
    seconds = int(re.search(rb"Second-(\d+)", response.content).group(1))  # type: ignore[union-attr]
    assert 0 < seconds <= 604800


# -- users ---------------------------------------------------------------------------------


def test_users_see_only_their_own_tree(live_server: LiveServer, dav: httpx.Client) -> None:
    live_server.instance.accounts.create_user("bob", "bob's long passphrase")
    dav.put("secret.txt", content=b"admin's")
    dav.request("LOCK", "secret.txt", content=LOCKINFO)
    with httpx.Client(base_url=live_server.dav_url, auth=("bob", "bob's long passphrase")) as bob:
        assert names_in(bob, "") == set()
        assert bob.get("secret.txt").status_code == 404
        assert bob.put("secret.txt", content=b"bob's").status_code == 201  # his own file, no lock clash
        assert bob.get("secret.txt").content == b"bob's"
    assert dav.get("secret.txt").content == b"admin's"


# -- names -------------------------------------------------------------------------------


def test_nfd_and_nfc_reach_the_same_file_and_nfd_is_listed_back(dav: httpx.Client) -> None:
    nfc = unicodedata.normalize("NFC", "Compte-rendu échographie.pdf")
    nfd = unicodedata.normalize("NFD", nfc)
    assert dav.put(nfd, content=b"report").status_code == 201
    assert dav.get(nfc).content == b"report"
    assert dav.put(nfc, content=b"updated").status_code == 204  # same file, not a second one
    assert names_in(dav, "") == {nfd}


def test_names_are_case_sensitive(dav: httpx.Client) -> None:
    dav.put("Report.pdf", content=b"upper")
    dav.put("report.pdf", content=b"lower")
    assert names_in(dav, "") == {"Report.pdf", "report.pdf"}
    assert dav.get("Report.pdf").content == b"upper"


@pytest.mark.parametrize("name", ["bad%01name", "tab%09name", "a%5Cb", "x" * 256, "%C3%A9" * 128])
def test_invalid_names_are_refused(dav: httpx.Client, name: str) -> None:
    assert dav.put(name, content=b"x").status_code == 400
    assert dav.request("MKCOL", name + "/").status_code == 400


def test_traversal_stays_inside_the_tree(live_server: LiveServer, instance_dir: TestInstance) -> None:
    auth = basic(instance_dir.user, instance_dir.password)
    for target in ("/dav/../../etc/passwd", "/dav/%2e%2e/%2e%2e/etc/passwd", "/dav/a/../../../etc/passwd"):
        answer = raw_request(
            live_server.url, f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close"
        )
        assert status_of(answer) in (400, 404), answer[:200]
        assert b"root:" not in answer
        head, _, body = answer.partition(b"\r\n\r\n")
        length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        assert length and int(length[0].split(b":")[1]) == len(body)  # the whole answer: no client left waiting


# -- ranges, property-based ----------------------------------------------------------------


@pytest.fixture(scope="module")
def range_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[int, bytes]]]:
    from server.testing import make_instance

    inst = make_instance(tmp_path_factory.mktemp("ranges") / "data")
    with (
        LiveServer(inst.config_path) as server,
        httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password)) as c,
    ):
        files: dict[int, bytes] = {}
        for size in (1, 100, 65535, 65536, 65537, 200_000, 333_333):
            files[size] = os.urandom(size)
            assert c.put(f"r{size}", content=files[size]).status_code == 201
        yield c, files


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_ranges_return_exact_bytes(
    range_server: tuple[httpx.Client, dict[int, bytes]], data: st.DataObject
) -> None:
    client, files = range_server
    size = data.draw(st.sampled_from(sorted(files)))
    content = files[size]
    kind = data.draw(st.sampled_from(["closed", "open", "suffix"]))
    start = data.draw(st.integers(0, size - 1))
    if kind == "closed":
        end = data.draw(st.integers(start, size + 1000))
        header, expected = f"bytes={start}-{end}", content[start : end + 1]
    elif kind == "open":
        header, expected = f"bytes={start}-", content[start:]
    else:
        length = data.draw(st.integers(1, size + 1000))
        header, expected = f"bytes=-{length}", content[-length:]
    response = client.get(f"r{size}", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == expected


def test_propname_lists_names_without_values(dav: httpx.Client) -> None:
    dav.put("named.txt", content=b"x")
    dav.request("PROPPATCH", "named.txt", content=PROPPATCH % b"value")
    body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'
    response = dav.request("PROPFIND", "named.txt", headers={"Depth": "0"}, content=body)
    assert response.status_code == 207
    prop = ET.fromstring(response.content).find("{DAV:}response/{DAV:}propstat/{DAV:}prop")
    assert prop is not None
    names = {child.tag for child in prop}
    assert {"{DAV:}getcontentlength", "{DAV:}getetag", "{urn:x-test:}note"} <= names
    assert all(not (child.text or "").strip() and len(child) == 0 for child in prop)


def test_options_decodes_its_path_like_every_other_method(dav: httpx.Client) -> None:
    """cheroot leaves an OPTIONS path percent-encoded; MedDAV decodes it (litmus asks OPTIONS of a nested folder)."""
    assert dav.request("MKCOL", "Dr%20Hélène/").status_code == 201
    assert dav.request("MKCOL", "Dr%20Hélène/Comptes%20rendus/").status_code == 201
    for path in ("Dr%20H%C3%A9l%C3%A8ne/Comptes%20rendus/", "Dr%20Hélène/Comptes%20rendus/nouveau.txt"):
        answer = dav.request("OPTIONS", path)
        assert answer.status_code == 200, path
    assert "PROPFIND" in dav.request("OPTIONS", "Dr%20Hélène/Comptes%20rendus/").headers["Allow"]
    # An encoded slash stays one: no such folder (OPTIONS answers what may be created there).
    assert "PROPFIND" not in dav.request("OPTIONS", "Dr%20Hélène%2FComptes%20rendus/").headers["Allow"]
