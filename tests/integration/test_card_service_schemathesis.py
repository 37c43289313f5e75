"""The card service fuzzed from its own OpenAPI document by schemathesis (its own venv)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.settings import ROOT
from tests.integration.conftest import CardService

pytestmark = pytest.mark.integration
SCHEMATHESIS = ROOT / ".venv-schemathesis" / "bin" / "schemathesis"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def fuzz(service: CardService, token: str, artefacts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCHEMATHESIS), "run", f"{service.url}/v1/openapi.json",
         "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
         "--max-examples", "25", "--seed", "20261125", "--workers", "1",
         "--report-junit-path", str(artefacts / "schemathesis.xml")],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=artefacts,  # its cache goes there, not into the repository
    )


@pytest.mark.parametrize("role", ["service", "staff"])
def test_no_server_error_and_every_answer_matches_the_document(
        card_service: CardService, role: str, tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed: run `make test` (it builds .venv-schemathesis)")
    token = card_service.service_token if role == "service" else card_service.staff_token
    result = fuzz(card_service, token, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout.split("Test cases:")[-1]
