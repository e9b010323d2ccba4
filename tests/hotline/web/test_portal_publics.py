"""The portal's five publics pages: every role allowed or forbidden to open and to save, tiered
maintenance by district window staff, CSRF, a stale form refused with who changed it, invalid
fields named, the history in Shanghai time, and hostile text escaped on the portal and on the
public directory page."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from hotline.accounts.models import User
from hotline.accounts.service import actor_for, create_user
from hotline.web.demo import DEMO_PASSWORD, seed
from kb.db import as_utc
from kb.models import CatalogueChange, Institution
from kb.publics import publics_service
from tests.hotline.web.conftest import PASSWORD, Browser, Cast, page_csrf

SHANGHAI = ZoneInfo("Asia/Shanghai")
STAMP_INPUT = re.compile(r'name="updated_at" value="([^"]+)"')
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>收费'


def _by_code(session: Session, code: str) -> Institution:
    return session.exec(select(Institution).where(Institution.code == code)).one()


def _fresh(session: Session, code: str) -> Institution:
    """As committed, read in a session of its own (SQLite's BEGIN IMMEDIATE would otherwise
    lock the app out while the test's session holds a transaction)."""
    session.commit()
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return _by_code(other, code)


def _edits(session: Session, code: str) -> list[CatalogueChange]:
    session.commit()
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return list(
            other.exec(
                select(CatalogueChange)
                .where(CatalogueChange.entity_key == code, CatalogueChange.action == "edit")
                .order_by(col(CatalogueChange.id))
            ).all()
        )


@pytest.fixture
def tiers(session: Session, cast: Cast) -> dict[str, Institution]:
    """Besides the cast (bank and other in Wanzhou): staff of Wanzhou's district window
    ("window") and of Qianjiang's ("far")."""
    found = {
        code: _by_code(session, code)
        for code in ("win-wanzhou", "win-qianjiang", "inst-0009", "cwin-wanzhou-etdz")
    }
    assert cast.bank.district_code == "wanzhou" == cast.other_bank.district_code
    create_user(
        session, "window", "institution", institution_id=found["win-wanzhou"].id, password=PASSWORD
    )
    create_user(
        session, "far", "institution", institution_id=found["win-qianjiang"].id, password=PASSWORD
    )
    session.commit()
    return found


def _form_of(client: TestClient, institution_id: int) -> tuple[str, str]:
    page = client.get(f"/portal/institutions/{institution_id}/publics")
    assert page.status_code == 200, page.text
    found = STAMP_INPUT.search(page.text)
    assert found
    return page_csrf(client, f"/portal/institutions/{institution_id}/publics"), found.group(1)


def _save(client: TestClient, institution: Institution, stamp: str, csrf: str, **fields: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/portal/institutions/{institution.id}/publics",
        data={"csrf_token": csrf, "updated_at": stamp, **fields},
        follow_redirects=False,
    )


# --- who may open and save what -----------------------------------------------------------

EDIT_BANK = [
    ("bank", 200),  # its own
    ("other", 403),  # a neighbour in the same district
    ("window", 200),  # its district's window (tiered maintenance)
    ("far", 403),  # another district's window
    ("zhao", 200),  # supervisor
    ("root", 200),  # admin
    ("li", 403),  # agent
]


@pytest.mark.parametrize(("username", "status"), EDIT_BANK)
def test_opening_and_saving_the_bank_publics_by_role(
    browser: Browser,
    session: Session,
    cast: Cast,
    tiers: dict[str, Institution],
    username: str,
    status: int,
) -> None:
    client = browser(username)
    opened = client.get(f"/portal/institutions/{cast.bank.id}/publics")
    assert opened.status_code == status
    if status == 200:
        assert cast.bank.fees_zh in opened.text and 'name="fees_en"' in opened.text
    else:
        assert "您无权访问" in opened.text and cast.bank.fees_zh not in opened.text

    csrf = page_csrf(client, f"/portal/institutions/{cast.bank.id}/publics")
    stamp = as_utc(_fresh(session, "inst-0001").updated_at).isoformat()
    answer = _save(client, cast.bank, stamp, csrf, fees_zh=f"{username} 改的收费")
    stored = _fresh(session, "inst-0001")
    if status == 200:
        assert answer.status_code == 303
        assert answer.headers["location"].endswith(f"/{cast.bank.id}/publics?done=saved")
        assert stored.fees_zh == f"{username} 改的收费"
        (row,) = _edits(session, "inst-0001")
        assert row.actor == f"user:{username}"
        assert row.changes == {"fees_zh": [cast.bank.fees_zh, f"{username} 改的收费"]}
    else:
        assert answer.status_code == 403
        assert stored.fees_zh == cast.bank.fees_zh and _edits(session, "inst-0001") == []


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        (
            "window",
            {"cwin-wanzhou-etdz": 200, "win-wanzhou": 200, "inst-0009": 403, "muni-platform": 403},
        ),
        ("far", {"inst-0009": 200, "win-wanzhou": 403, "inst-0001": 403}),
        ("bank", {"win-wanzhou": 403, "muni-platform": 403}),
        ("zhao", {"muni-platform": 200, "win-qianjiang": 200}),
    ],
)
def test_tiered_maintenance_pages(
    browser: Browser,
    tiers: dict[str, Institution],
    session: Session,
    username: str,
    expected: dict[str, int],
) -> None:
    ids = {code: _by_code(session, code).id for code in expected}
    session.commit()  # ends the read; SQLite's BEGIN IMMEDIATE would lock the app out
    client = browser(username)
    found = {
        code: client.get(f"/portal/institutions/{ids[code]}/publics").status_code
        for code in expected
    }
    assert found == expected


def test_anonymous_is_sent_to_login(anonymous: TestClient, cast: Cast) -> None:
    for path in (
        "/portal/publics",
        "/portal/institutions",
        f"/portal/institutions/{cast.bank.id}/publics",
    ):
        answer = anonymous.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=%2Fportal%2F")
    posted = anonymous.post(
        f"/portal/institutions/{cast.bank.id}/publics",
        data={"fees_zh": "匿名", "updated_at": "2026-01-01T00:00:00+00:00"},
        follow_redirects=False,
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login")


@pytest.mark.parametrize(
    ("username", "status"),
    [("bank", 303), ("window", 303), ("li", 403), ("zhao", 403), ("root", 403)],
)
def test_own_publics(
    browser: Browser, tiers: dict[str, Institution], cast: Cast, username: str, status: int
) -> None:
    answer = browser(username).get("/portal/publics", follow_redirects=False)
    assert answer.status_code == status
    if status == 303:
        own = cast.bank.id if username == "bank" else tiers["win-wanzhou"].id
        assert answer.headers["location"] == f"/portal/institutions/{own}/publics"


def test_an_unknown_institution_is_404(browser: Browser, cast: Cast) -> None:
    for username in ("zhao", "bank"):
        client = browser(username)
        assert client.get("/portal/institutions/999999/publics").status_code == 404
        csrf = page_csrf(client, "/portal/institutions/999999/publics")
        answer = client.post(
            "/portal/institutions/999999/publics",
            data={"csrf_token": csrf, "updated_at": "2026-01-01T00:00:00+00:00", "fees_zh": "x"},
        )
        assert answer.status_code == 404


# --- the list of what a district window maintains ---------------------------------------


def test_the_district_list(browser: Browser, cast: Cast, tiers: dict[str, Institution]) -> None:
    window = browser("window").get("/portal/institutions")
    assert window.status_code == 200
    assert f"/portal/institutions/{cast.bank.id}/publics" in window.text
    assert f"/portal/institutions/{tiers['cwin-wanzhou-etdz'].id}/publics" in window.text
    assert f"/portal/institutions/{tiers['inst-0009'].id}/publics" not in window.text
    assert 'data-code="muni-platform"' not in window.text
    far = browser("far").get("/portal/institutions").text
    assert 'data-code="inst-0009"' in far and 'data-code="inst-0001"' not in far
    # Supervisors choose the district; nothing is listed until they do.
    zhao = browser("zhao")
    assert 'data-code="' not in zhao.get("/portal/institutions").text
    assert 'data-code="inst-0001"' in zhao.get("/portal/institutions?district=wanzhou").text
    assert 'data-code="' not in zhao.get("/portal/institutions?district=nowhere").text
    assert 'href="/portal/institutions"' in zhao.get("/queue").text  # their way in


@pytest.mark.parametrize(("username", "status"), [("bank", 403), ("li", 403), ("root", 200)])
def test_who_may_open_the_district_list(
    browser: Browser, cast: Cast, username: str, status: int
) -> None:
    assert browser(username).get("/portal/institutions").status_code == status


def test_the_portal_links_to_the_publics(browser: Browser, tiers: dict[str, Institution]) -> None:
    bank = browser("bank").get("/portal").text
    assert 'href="/portal/publics"' in bank and 'href="/portal/institutions"' not in bank
    window = browser("window").get("/portal").text
    assert 'href="/portal/publics"' in window and 'href="/portal/institutions"' in window


# --- CSRF, stale forms, invalid fields -------------------------------------------------------


def test_a_save_without_the_csrf_token_is_refused(
    browser: Browser, session: Session, cast: Cast
) -> None:
    client = browser("bank")
    _csrf, stamp = _form_of(client, cast.bank.id or 0)
    for token in ("", "forged"):
        answer = _save(client, cast.bank, stamp, token, fees_zh="伪造的收费")
        assert answer.status_code == 403 and "表单已失效" in answer.text
    assert _fresh(session, "inst-0001").fees_zh == cast.bank.fees_zh
    assert _edits(session, "inst-0001") == []


def test_a_stale_form_is_refused_with_who_changed_it(
    browser: Browser, session: Session, cast: Cast, tiers: dict[str, Institution]
) -> None:
    bank, window = browser("bank"), browser("window")
    bank_csrf, bank_stamp = _form_of(bank, cast.bank.id or 0)
    window_csrf, window_stamp = _form_of(window, cast.bank.id or 0)
    assert bank_stamp == window_stamp

    assert (
        _save(window, cast.bank, window_stamp, window_csrf, fees_zh="窗口改的收费").status_code
        == 303
    )
    refused = _save(bank, cast.bank, bank_stamp, bank_csrf, fees_zh="机构改的收费", hours_zh="全天")

    assert refused.status_code == 409
    assert "该机构的五公开已被 window 于" in refused.text
    assert "窗口改的收费</textarea>" in refused.text  # the form now holds the current text
    yours = refused.text.split('class="card yours"')[1].split("</section>")[0]
    assert "机构改的收费" in yours and "全天" in yours
    assert _fresh(session, "inst-0001").fees_zh == "窗口改的收费"
    assert len(_edits(session, "inst-0001")) == 1
    # Starting again from the page it was given, the edit goes through.
    again = STAMP_INPUT.search(refused.text)
    assert again
    saved = _save(bank, cast.bank, again.group(1), bank_csrf, fees_zh="机构改的收费")
    assert saved.status_code == 303 and _fresh(session, "inst-0001").fees_zh == "机构改的收费"


def test_a_form_without_its_version_is_refused(
    browser: Browser, session: Session, cast: Cast
) -> None:
    client = browser("bank")
    csrf, _stamp = _form_of(client, cast.bank.id or 0)
    for stamp in ("", "yesterday"):
        answer = _save(client, cast.bank, stamp, csrf, fees_zh="没有版本")
        assert answer.status_code == 422 and "表单缺少版本信息" in answer.text
    assert _edits(session, "inst-0001") == []


def test_invalid_fields_are_named_and_nothing_is_saved(
    browser: Browser, session: Session, cast: Cast
) -> None:
    client = browser("bank")
    csrf, stamp = _form_of(client, cast.bank.id or 0)
    answer = _save(
        client, cast.bank, stamp, csrf, fees_zh="新收费", hours_zh="周" * 201, content_en=" "
    )
    assert answer.status_code == 422
    assert "服务时间 · 中文：最多 200 个字符（现为 201 个）" in answer.text
    assert "服务内容 · 英文：不能为空" in answer.text
    assert "新收费</textarea>" in answer.text  # what was typed is kept for correcting
    english = client.post(
        f"/portal/institutions/{cast.bank.id}/publics?lang=en",
        data={"csrf_token": csrf, "updated_at": stamp, "hours_en": "h" * 250},
    )
    assert english.status_code == 422
    assert "Hours · English: at most 200 characters (it has 250)" in english.text
    assert _fresh(session, "inst-0001").fees_zh == cast.bank.fees_zh
    assert _edits(session, "inst-0001") == []


def test_an_unchanged_form_saves_nothing(browser: Browser, session: Session, cast: Cast) -> None:
    client = browser("bank")
    csrf, stamp = _form_of(client, cast.bank.id or 0)
    answer = _save(client, cast.bank, stamp, csrf, fees_zh=cast.bank.fees_zh + "\r\n")
    assert answer.headers["location"].endswith("?done=unchanged")
    assert "内容没有变化" in client.get(answer.headers["location"]).text
    assert _edits(session, "inst-0001") == []


# --- history, escaping and the public directory ---------------------------------------------


def test_the_history_and_the_directory_show_the_edit_escaped(
    browser: Browser, anonymous: TestClient, session: Session, cast: Cast
) -> None:
    client = browser("bank")
    csrf, stamp = _form_of(client, cast.bank.id or 0)
    saved = _save(client, cast.bank, stamp, csrf, fees_zh=HOSTILE, fees_en="Free <b>always</b>")
    assert saved.status_code == 303

    page = client.get(saved.headers["location"]).text
    assert 'data-done="saved"' in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>always" not in page
    history = page.split('id="history"')[1]
    (row,) = _edits(session, "inst-0001")
    local = as_utc(row.at).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    assert local in history and "bank" in history and "门户编辑" in history
    assert "收费标准 · 中文" in history and "收费标准 · 英文" in history
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in history
    assert cast.bank.fees_zh in history  # the old text beside the new
    assert (
        "Free &lt;b&gt;always&lt;/b&gt;"
        in client.get(saved.headers["location"].split("?")[0] + "?lang=en").text
    )

    public = anonymous.get("/directory/inst-0001")
    assert public.status_code == 200
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in public.text
    assert "<script>alert" not in public.text and cast.bank.fees_zh not in public.text
    english = anonymous.get("/directory/inst-0001?lang=en").text
    assert "Free &lt;b&gt;always&lt;/b&gt;" in english and "<b>always" not in english


def test_a_district_window_edit_reaches_the_directory(
    browser: Browser, anonymous: TestClient, tiers: dict[str, Institution]
) -> None:
    cluster = tiers["cwin-wanzhou-etdz"]
    client = browser("window")
    csrf, stamp = _form_of(client, cluster.id or 0)
    saved = _save(client, cluster, stamp, csrf, hours_zh="周一至周六 9:00-18:00")
    assert saved.status_code == 303
    assert "周一至周六 9:00-18:00" in anonymous.get(f"/directory/{cluster.code}").text


# --- the demo users ----------------------------------------------------------------------------


def test_the_demo_district_user_maintains_inst1(session: Session) -> None:
    lines = seed(session, password=DEMO_PASSWORD)
    session.commit()
    assert any(line.startswith("district1 ") for line in lines)
    users = {u.username: u for u in session.exec(select(User)).all()}
    inst1 = session.get(Institution, users["inst1"].institution_id)
    window = session.get(Institution, users["district1"].institution_id)
    assert inst1 is not None and window is not None
    assert window.tier.value == "district_window" and window.district_code == inst1.district_code
    district1 = users["district1"]
    assert publics_service.may_edit(session, actor_for(district1), inst1)
    assert not publics_service.may_edit(session, actor_for(users["inst1"]), window)
