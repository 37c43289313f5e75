"""axe-core run inside a page under test: the accessibility violations a browser test rejects.

axe-core comes bundled in the `axe-playwright-python` package (nothing is fetched at run time)
and is evaluated through Playwright's DevTools connection, which the pages' strict CSP does not
govern, so the pages are checked exactly as they are served. Used for the chat page and the
staff console alike::

    found = violations(page)
    assert not found, describe(found)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

AXE = Axe()
# Every rule axe-core runs by default (WCAG 2.0-2.2 A and AA, and its best practices); which of
# them count is the caller's choice of impact.
SERIOUS = ("serious", "critical")


def violations(page: Page, impact: Iterable[str] = SERIOUS,
               context: str | list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's violation results on `page` (or only inside `context`, a CSS selector or a
    list of them) whose impact is one of `impact`: each is axe-core's own object (`id`,
    `impact`, `help`, `helpUrl`, `nodes` with their `target` and `failureSummary`)."""
    wanted = set(impact)
    results = AXE.run(page, context=context, options={"resultTypes": ["violations"]})
    return [v for v in results.response["violations"] if v["impact"] in wanted]


def describe(found: list[dict[str, Any]]) -> str:
    """One line per rule and one per element, for an assertion message."""
    lines = []
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"    {' '.join(map(str, node['target']))}: {summary[:300]}")
    return "\n".join(lines)
