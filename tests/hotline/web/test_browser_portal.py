"""The five publics in a real browser (Chromium through Playwright, the app on a loopback port):
the demo's inst1 edits its fees and finds the edit in the history; the demo's district window
user (district1) edits an institution of its district, which the public directory then shows;
a form left open while someone else saved is refused with who did it. Screenshots at 1366×768
go to test-artifacts/ (portal-*.png). Never skips: without /usr/bin/chromium it fails."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page
from sqlmodel import Session, select

from hotline.web.demo import seed
from kb.models import Institution
from tests.hotline.web.conftest import PASSWORD
from tests.hotline.web.test_browser import (  # noqa: F401 - fixtures, used by name
    _login,
    _page,
    _shot,
    chromium,
    server,
)

pytestmark = pytest.mark.browser


def _stored(session: Session, code: str) -> Institution:
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return other.exec(select(Institution).where(Institution.code == code)).one()


def _save(page: Page, expect: str = "saved") -> None:
    page.click("#save-publics")
    page.wait_for_selector(f".done[data-done={expect}]", timeout=10000)


def test_inst1_and_its_district_window_maintain_the_publics(
    chromium: Browser,  # noqa: F811
    server: str,  # noqa: F811
    session: Session,
) -> None:
    seed(session, password=PASSWORD)  # the demo users, with the tests' password
    session.commit()
    neighbour = "inst-0007"  # another Wanzhou institution, not inst1's

    inst1 = _page(chromium, server)
    _login(inst1, "inst1")
    assert inst1.url.endswith("/portal")
    assert inst1.locator("#link-district").count() == 0  # not a district window
    inst1.click("#link-publics")
    inst1.wait_for_selector("#publics-form")
    # A field left empty is refused, named, and nothing is saved.
    inst1.fill("#f-content_en", "")
    inst1.click("#save-publics")
    inst1.wait_for_selector("[data-problem='portal.publics.invalid']", timeout=10000)
    assert "服务内容 · 英文：不能为空" in inst1.locator("#problem").inner_text()
    assert inst1.locator(".cell.invalid #f-content_en").count() == 1
    _shot(inst1, "portal-publics-invalid")
    assert _stored(session, "inst-0001").content_en
    inst1.click("#link-publics")  # start again from the stored text
    inst1.wait_for_selector("[data-problem]", state="detached")
    inst1.fill("#f-fees_zh", "融资咨询免费；贷款利率按合同约定，不收取任何额外费用。")
    inst1.fill("#f-fees_en", "Advice is free; the loan rate follows the contract, no extra fees.")
    _save(inst1)
    history = inst1.locator("#history tbody.entry").first
    assert "inst1" in history.inner_text()
    assert "不收取任何额外费用" in history.locator("td.new").first.inner_text()
    assert _stored(session, "inst-0001").fees_zh.endswith("不收取任何额外费用。")
    _shot(inst1, "portal-publics")
    inst1.locator("#history").scroll_into_view_if_needed()
    _shot(inst1, "portal-publics-history")
    inst1.goto(inst1.url.split("?")[0] + "?lang=en")
    _shot(inst1, "portal-publics-en")

    district1 = _page(chromium, server)
    _login(district1, "district1")
    district1.click("#link-district")
    district1.wait_for_selector("table.institutions")
    _shot(district1, "portal-institutions")
    district1.click(f"a[data-code={neighbour}]")
    district1.wait_for_selector("#publics-form")
    district1.fill("#f-hours_zh", "周一至周六 9:00-18:00")
    _save(district1)
    assert "district1" in district1.locator("#history tbody.entry").first.inner_text()
    assert _stored(session, neighbour).hours_zh == "周一至周六 9:00-18:00"
    district1.click("#public-page")
    district1.wait_for_load_state("networkidle")
    assert "周一至周六 9:00-18:00" in district1.locator("dl.five-publics").inner_text()

    # Tiered maintenance reaches inst1 too: district1 saves while inst1 has its form open.
    inst1.goto(inst1.url.split("?")[0] + "?lang=zh")
    inst1.fill("#f-hours_zh", "机构自己改的时间")
    district1.goto(f"/portal/institutions/{_stored(session, 'inst-0001').id}/publics")
    district1.fill("#f-hours_zh", "窗口平台改的时间")
    _save(district1)
    inst1.click("#save-publics")
    inst1.wait_for_selector("[data-problem=stale]", timeout=10000)
    assert "district1" in inst1.locator("[data-problem=stale]").inner_text()
    assert inst1.input_value("#f-hours_zh") == "窗口平台改的时间"
    assert "机构自己改的时间" in inst1.locator("section.yours").inner_text()
    assert _stored(session, "inst-0001").hours_zh == "窗口平台改的时间"
    _shot(inst1, "portal-publics-stale")
