"""The example plugin's tests, as a plugin author writes them: in a real MedDAV.

MedDAV's pytest plugin (installed with MedDAV) gives the ``meddav_server``
fixture: a MedDAV on 127.0.0.1 with the plugins the ``meddav`` marker names,
found through their entry points, so this package must be installed
(``pip install -e .``).  The plugin runs in the test process: the test reads
its counters directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import meddav_hello
import pytest

from server.errors import ConfigError

if TYPE_CHECKING:
    from server.pytest_plugin import MedDAVServer

HELLO = pytest.mark.meddav(plugins=["hello"], config={"plugins.hello": {"greeting": "Salut"}})


@HELLO
def test_starts_with_the_configured_greeting(meddav_server: MedDAVServer) -> None:
    assert meddav_server.instance.plugins.facades["hello"].greeted == "Salut, MedDAV"  # type: ignore[attr-defined]


@HELLO
def test_counts_each_file_written_once(meddav_server: MedDAVServer) -> None:
    with meddav_server.client() as dav:
        assert dav.put("compte-rendu.txt", content=b"RAS").status_code == 201
        assert dav.put("compte-rendu.txt", content=b"RAS, v2").status_code == 204  # a new version
        assert dav.get("compte-rendu.txt").content == b"RAS, v2"

    counts = meddav_server.wait_for_jobs()  # the events have been delivered to the plugin

    assert counts["dead"] == 0
    assert meddav_hello.written == {meddav_server.org_id: 2}


@HELLO
def test_ignores_other_events(meddav_server: MedDAVServer) -> None:
    with meddav_server.client() as dav:
        assert dav.request("MKCOL", "dossiers/").status_code == 201
        assert dav.put("dossiers/a.txt", content=b"a").status_code == 201
        assert dav.delete("dossiers/a.txt").status_code == 204

    assert meddav_server.wait_for_jobs()["dead"] == 0
    assert meddav_hello.written == {meddav_server.org_id: 1}


def test_refuses_an_empty_greeting(meddav_server_factory: Callable[..., MedDAVServer]) -> None:
    # The operator's mistake stops the start with one line naming the key, the value and the fix.
    problem = '[plugins.hello] greeting = "  ": must be a non-empty string'
    with pytest.raises(ConfigError, match=re.escape(problem)):
        meddav_server_factory(plugins=["hello"], config={"plugins.hello": {"greeting": "  "}})
