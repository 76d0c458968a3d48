"""litmus, the WebDAV compliance suite, against a real server: no failure allowed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from server.testing import LiveServer, TestInstance
from tests.conftest import require_client

SUITES = ("basic", "copymove", "props", "locks", "http")
#: Warnings we accept, each explained in README.md ("litmus").
ACCEPTED_WARNINGS: dict[str, str] = {}

pytestmark = pytest.mark.client


def test_litmus_passes_every_suite(live_server: LiveServer, instance_dir: TestInstance, tmp_path: Path) -> None:
    litmus = require_client("litmus")
    result = subprocess.run(
        [litmus, "-k", live_server.dav_url, instance_dir.user, instance_dir.password],
        cwd=tmp_path,
        capture_output=True,
        encoding="utf-8",
        errors="replace",  # litmus echoes request URIs holding raw bytes
        timeout=600,
    )
    output = result.stdout + result.stderr
    summaries = dict(re.findall(r"<- summary for `(\w+)': of \d+ tests run: \d+ passed, (\d+) failed", output))
    assert set(summaries) == set(SUITES), output[-3000:]
    failures = [line for line in output.splitlines() if "FAIL" in line]
    assert all(count == "0" for count in summaries.values()), "\n".join(failures)
    warnings = [line.strip() for line in output.splitlines() if "WARNING:" in line]
    unexpected = [w for w in warnings if not any(name in w for name in ACCEPTED_WARNINGS)]
    assert not unexpected, unexpected
    assert result.returncode == 0
