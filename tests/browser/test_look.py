"""Accessibility (axe-core) and screenshots of every page in every state."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, ViewportSize

from tests.browser.steps import AXE, DESKTOP, PHONE, SCREENSHOTS, Pages, walk

RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
}"""

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.mark.parametrize("width", [1280, 320])
def test_pages_have_no_serious_accessibility_problems(pages: Pages, width: int) -> None:
    """axe-core finds nothing serious or critical, and nothing scrolls sideways, in any state."""
    assert AXE.exists(), "run: npm install --prefix build/node axe-core"
    problems: dict[str, object] = {}

    def check(name: str, page: Page) -> None:
        if not page.evaluate("() => typeof axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        found = page.evaluate(RUN_AXE)
        if found:
            problems[name] = found
        if not page.evaluate(NO_SIDEWAYS_SCROLL):
            problems[f"{name} scrolls sideways"] = page.evaluate(
                "() => document.documentElement.scrollWidth")

    walk(pages, check, viewport={"width": width, "height": 800}, bypass_csp=True)
    print(json.dumps(problems, indent=2))
    assert not problems


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_screenshots_of_every_state(pages: Pages, viewport: ViewportSize) -> None:
    """Every page in every state is photographed (build/screenshots/) and fits the width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []

    def shoot(name: str, page: Page) -> None:
        path = SCREENSHOTS / f"{name}-{viewport['width']}.png"
        page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header belongs at the top
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="initial")
        saved.append(path.name)
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{name} scrolls sideways"

    walk(pages, shoot, viewport=viewport)
    assert len(saved) == 9
