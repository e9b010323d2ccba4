"""The five publics edited by institutions: the history row written with the edit, stale edits
refused, validation naming the field, tiered maintenance (who may edit what), and the data-file
load leaving portal-maintained publics alone."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from kb.db import as_utc
from kb.models import CatalogueChange, Institution
from kb.publics import (
    FIELDS,
    EditNotAllowed,
    InvalidPublics,
    StalePublics,
    UnknownInstitution,
    publics_service,
)
from kb.service import catalogue_service
from tickets.models import Role
from tickets.service import Actor


def _by_code(session: Session, code: str) -> Institution:
    return session.exec(select(Institution).where(Institution.code == code)).one()


def _fresh(session: Session, code: str) -> Institution:
    """The row as committed, read in a session of its own; the test's session ends its
    transaction first (SQLite's BEGIN IMMEDIATE would otherwise lock the reader out)."""
    session.commit()
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return _by_code(other, code)


def _edits(session: Session, code: str) -> list[CatalogueChange]:
    return list(
        session.exec(
            select(CatalogueChange)
            .where(CatalogueChange.entity_key == code, CatalogueChange.action == "edit")
            .order_by(col(CatalogueChange.id))
        ).all()
    )


def staff(session: Session, code: str, name: str = "staff") -> Actor:
    return Actor(f"user:{name}", Role.institution, _by_code(session, code).id)


BANK = "inst-0001"  # a bank in Wanzhou (the demo's inst1)
WANZHOU_OTHER = "inst-0007"
WANZHOU_CLUSTER = "cwin-wanzhou-etdz"
WANZHOU_WINDOW = "win-wanzhou"
QIANJIANG_BANK = "inst-0009"
QIANJIANG_WINDOW = "win-qianjiang"
YUZHONG_WINDOW = "win-yuzhong"
MUNICIPAL = "muni-platform"  # sits in Yuzhong


def test_an_edit_writes_the_changed_fields_and_one_history_row(session: Session) -> None:
    bank = _by_code(session, BANK)
    before = as_utc(bank.updated_at)
    old_fees = bank.fees_zh
    editor = staff(session, BANK, "li-bank")

    changed = publics_service.edit_publics(
        session,
        editor,
        bank.id or 0,
        {
            "fees_zh": "咨询免费；贷款利率按合同。",
            "fees_en": bank.fees_en,
            "hours_zh": bank.hours_zh,
        },
        before,
    )
    session.commit()

    assert changed == {"fees_zh": [old_fees, "咨询免费；贷款利率按合同。"]}
    stored = _fresh(session, BANK)
    assert stored.fees_zh == "咨询免费；贷款利率按合同。" and stored.fees_en == bank.fees_en
    assert as_utc(stored.updated_at) > before
    (row,) = _edits(session, BANK)
    assert (row.entity, row.entity_key, row.action, row.actor) == (
        "institution",
        BANK,
        "edit",
        "user:li-bank",
    )
    assert row.changes == {"fees_zh": [old_fees, "咨询免费；贷款利率按合同。"]}
    assert [h.id for h in publics_service.history(session, stored)][0] == row.id


def test_an_edit_that_changes_nothing_writes_nothing(session: Session) -> None:
    bank = _by_code(session, BANK)
    stamp = as_utc(bank.updated_at)
    # What a browser sends back for untouched fields: CRLF line ends, trailing blanks.
    same = {name: getattr(bank, name).replace("\n", "\r\n") + "  \r\n" for name in FIELDS}
    assert (
        publics_service.edit_publics(session, staff(session, BANK), bank.id or 0, same, stamp) == {}
    )
    session.commit()
    assert _edits(session, BANK) == []
    assert as_utc(_fresh(session, BANK).updated_at) == stamp


def test_a_stale_edit_is_refused_with_who_changed_it_and_the_current_values(
    session: Session,
) -> None:
    bank = _by_code(session, BANK)
    read_at = as_utc(bank.updated_at)
    publics_service.edit_publics(
        session, staff(session, BANK, "first"), bank.id or 0, {"fees_zh": "第一位的收费"}, read_at
    )
    session.commit()

    with pytest.raises(StalePublics) as refused:
        publics_service.edit_publics(
            session,
            staff(session, WANZHOU_WINDOW, "second"),
            bank.id or 0,
            {"fees_zh": "第二位的收费", "hours_zh": "全天"},
            read_at,
        )
    session.rollback()
    assert refused.value.who == "user:first"
    assert refused.value.current["fees_zh"] == "第一位的收费"
    assert "changed by user:first meanwhile" in str(refused.value)
    stored = _fresh(session, BANK)
    assert stored.fees_zh == "第一位的收费" and stored.hours_zh == bank.hours_zh
    assert as_utc(refused.value.updated_at) == as_utc(stored.updated_at)
    assert len(_edits(session, BANK)) == 1


def test_concurrent_edits_from_the_same_read_never_both_win(clean_db: Engine) -> None:
    """Two editors read the same version; the first holds its transaction open while the second
    tries. The second must be refused, not overwrite (it waits on the row lock on PostgreSQL,
    on the write lock on SQLite, then sees the new version)."""
    with Session(clean_db) as reader:
        bank = _by_code(reader, BANK)
        bank_id, stamp = bank.id or 0, as_utc(bank.updated_at)
        first_actor = staff(reader, BANK, "first")
        second_actor = staff(reader, WANZHOU_WINDOW, "second")
    outcome: dict[str, object] = {}
    first = Session(clean_db)
    publics_service.edit_publics(first, first_actor, bank_id, {"fees_zh": "甲"}, stamp)

    def second_editor() -> None:
        with Session(clean_db) as second:
            try:
                publics_service.edit_publics(
                    second, second_actor, bank_id, {"fees_zh": "乙"}, stamp
                )
                second.commit()
                outcome["result"] = "saved"
            except StalePublics as exc:
                second.rollback()
                outcome["result"] = exc.who

    thread = threading.Thread(target=second_editor)
    thread.start()
    thread.join(0.5)  # usually blocked on the lock by now; either way the outcome is the same
    first.commit()
    first.close()
    thread.join(30)
    assert outcome == {"result": "user:first"}
    with Session(clean_db) as after:
        assert _by_code(after, BANK).fees_zh == "甲"


def test_validation_names_every_bad_field_and_writes_nothing(session: Session) -> None:
    bank = _by_code(session, BANK)
    stamp = as_utc(bank.updated_at)
    with pytest.raises(InvalidPublics) as refused:
        publics_service.edit_publics(
            session,
            staff(session, BANK),
            bank.id or 0,
            {
                "fees_zh": "新收费",
                "hours_zh": "周" * 201,
                "content_en": "  \r\n ",
                "content_zh": "x" * 2001,
                "phone": "+86 23 0000",
            },
            stamp,
        )
    session.rollback()
    problems = {(p.field, p.code, p.limit) for p in refused.value.problems}
    assert problems == {
        ("hours_zh", "too_long", 200),
        ("content_en", "empty", 0),
        ("content_zh", "too_long", 2000),
        ("phone", "unknown", 0),
    }
    message = str(refused.value)
    assert "hours_zh: at most 200 characters (got 201)" in message
    assert "content_en: may not be empty" in message
    assert _fresh(session, BANK).fees_zh == bank.fees_zh
    assert _edits(session, BANK) == []


def test_the_limits_themselves_are_accepted_and_control_characters_dropped(
    session: Session,
) -> None:
    bank = _by_code(session, BANK)
    changed = publics_service.edit_publics(
        session,
        staff(session, BANK),
        bank.id or 0,
        {
            "hours_zh": "时" * 200,
            "fees_en": "free\x00 of\x07 charge\r\nfor all",
            "content_zh": "字" * 2000,
        },
        as_utc(bank.updated_at),
    )
    session.commit()
    assert set(changed) == {"hours_zh", "fees_en", "content_zh"}
    stored = _fresh(session, BANK)
    assert stored.fees_en == "free of charge\nfor all" and len(stored.hours_zh) == 200


ADMIN = Actor("user:root", Role.admin)
SUPERVISOR = Actor("user:zhao", Role.supervisor)
AGENT = Actor("user:li", Role.agent)
SYSTEM = Actor("system:test", Role.system)


@pytest.mark.parametrize(
    ("editor", "target", "allowed"),
    [
        (BANK, BANK, True),  # its own
        (BANK, WANZHOU_OTHER, False),  # a neighbour, not its to edit
        (WANZHOU_OTHER, BANK, False),
        (WANZHOU_WINDOW, BANK, True),  # tiered: the district's window
        (WANZHOU_WINDOW, WANZHOU_OTHER, True),
        (WANZHOU_WINDOW, WANZHOU_CLUSTER, True),
        (WANZHOU_WINDOW, WANZHOU_WINDOW, True),
        (WANZHOU_WINDOW, QIANJIANG_BANK, False),  # another district
        (QIANJIANG_WINDOW, BANK, False),
        (QIANJIANG_WINDOW, QIANJIANG_BANK, True),
        (YUZHONG_WINDOW, MUNICIPAL, False),  # the city tier is not a district's
        (WANZHOU_CLUSTER, BANK, False),  # a cluster window is not a district window
        (MUNICIPAL, BANK, False),
        ("admin", BANK, True),
        ("admin", MUNICIPAL, True),
        ("supervisor", QIANJIANG_BANK, True),
        ("agent", BANK, False),
        ("system", BANK, False),
    ],
)
def test_who_may_edit(session: Session, editor: str, target: str, allowed: bool) -> None:
    actor = {"admin": ADMIN, "supervisor": SUPERVISOR, "agent": AGENT, "system": SYSTEM}.get(
        editor
    ) or staff(session, editor)
    institution = _by_code(session, target)
    assert publics_service.may_edit(session, actor, institution) is allowed
    stamp, old = as_utc(institution.updated_at), institution.fees_zh
    if allowed:
        changed = publics_service.edit_publics(
            session, actor, institution.id or 0, {"fees_zh": "新"}, stamp
        )
        assert changed == {"fees_zh": [old, "新"]}
    else:
        with pytest.raises(EditNotAllowed):
            publics_service.edit_publics(
                session, actor, institution.id or 0, {"fees_zh": "新"}, stamp
            )
        with pytest.raises(EditNotAllowed):
            publics_service.editable(session, actor, institution.id or 0)
    session.commit()
    assert len(_edits(session, target)) == (1 if allowed else 0)


def test_a_district_window_maintains_its_district_but_not_the_city(session: Session) -> None:
    codes = [i.code for i in publics_service.district_entries(session, "yuzhong")]
    assert codes[0] == YUZHONG_WINDOW and MUNICIPAL not in codes
    wanzhou = [i.code for i in publics_service.district_entries(session, "wanzhou")]
    assert {BANK, WANZHOU_OTHER, WANZHOU_CLUSTER, WANZHOU_WINDOW} <= set(wanzhou)
    assert QIANJIANG_BANK not in wanzhou


def test_an_unknown_institution(session: Session) -> None:
    with pytest.raises(UnknownInstitution):
        publics_service.edit_publics(session, ADMIN, 999_999, {"fees_zh": "x"}, datetime.now())
    with pytest.raises(UnknownInstitution):
        publics_service.editable(session, ADMIN, 999_999)


def test_loading_the_data_files_keeps_publics_maintained_in_the_portal(session: Session) -> None:
    """`make run` loads the data files every time; an edit made in the portal must survive it,
    while fields nobody edited are still brought back to the files' values."""
    bank = _by_code(session, BANK)
    file_fees = bank.fees_zh
    publics_service.edit_publics(
        session,
        staff(session, BANK),
        bank.id or 0,
        {"fees_zh": "门户维护的收费"},
        as_utc(bank.updated_at),
    )
    other = _by_code(session, WANZHOU_OTHER)
    file_content = other.content_zh
    other.content_zh = "未经门户、直接改动的内容"
    session.add(other)
    session.commit()
    read_at = as_utc(_by_code(session, WANZHOU_OTHER).updated_at)

    catalogue_service.load(session, actor="test:load")
    session.commit()

    assert _fresh(session, BANK).fees_zh == "门户维护的收费" != file_fees
    assert _fresh(session, WANZHOU_OTHER).content_zh == file_content
    # The load moved the version on: an edit started before it is refused, naming the load.
    with pytest.raises(StalePublics) as refused:
        publics_service.edit_publics(
            session, staff(session, WANZHOU_OTHER), other.id or 0, {"fees_zh": "x"}, read_at
        )
    assert refused.value.who == "test:load"
