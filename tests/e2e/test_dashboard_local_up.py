"""`sqsloops local up --dashboard`: the dashboard served beside the embedded AWS, reading it through boto3."""

from __future__ import annotations

import urllib.request

import pytest

from sqsloops.cli.local import _start_dashboard
from sqsloops.cli.parser import build_parser
from sqsloops.local.server import EmbeddedAws
from tests.e2e.conftest import STACK

pytestmark = pytest.mark.e2e


def test_local_up_with_dashboard_serves_the_embedded_stack(embedded_aws: EmbeddedAws) -> None:
    args = build_parser().parse_args(
        ["local", "up", "--dashboard", "--dashboard-port", "0", "--dashboard-no-auth", "--dashboard-refresh-s", "5"]
    )
    assert args.dashboard
    server = _start_dashboard(embedded_aws, args)
    try:
        assert server.url == f"{server.base_url}/"  # --dashboard-no-auth: no token in it
        with urllib.request.urlopen(server.url + "jobs", timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200
        assert f"stack <b>{STACK}</b>" in page
        assert "Jobs by type" in page
    finally:
        server.stop()
