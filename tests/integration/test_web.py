"""The welcome page and the headers every response carries."""

from __future__ import annotations

import httpx

from server.app import SECURITY_HEADERS
from server.testing import LiveServer


def test_welcome_page_speaks_french_by_default_and_english_on_request(live_server: LiveServer) -> None:
    french = httpx.get(live_server.url + "/")
    assert french.status_code == 200 and 'lang="fr"' in french.text
    assert "Connecter un lecteur" in french.text and live_server.dav_url in french.text
    english = httpx.get(live_server.url + "/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert 'lang="en"' in english.text and "Map network drive" in english.text
    assert 'lang="en"' in httpx.get(live_server.url + "/?lang=en").text


def test_health_endpoint(live_server: LiveServer) -> None:
    assert httpx.get(live_server.url + "/healthz").json() == {"status": "ok"}


def test_security_headers_on_every_response(live_server: LiveServer) -> None:
    for response in (
        httpx.get(live_server.url + "/"),
        httpx.get(live_server.url + "/healthz"),
        httpx.get(live_server.url + "/missing"),
        httpx.get(live_server.dav_url),  # 401
        httpx.request("OPTIONS", live_server.dav_url),
    ):
        for name, value in SECURITY_HEADERS:
            assert response.headers.get(name) == value, (response.url, name)
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP on loopback
