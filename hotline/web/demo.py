"""``hotline users seed-demo``: the demo people for ``make run`` (idempotent).

One password for every demo account, printed by the command; never for production.
"""

from __future__ import annotations

import typer
from sqlmodel import Session, col, select

from hotline.accounts.models import User
from hotline.accounts.service import create_user
from kb.models import Institution, InstitutionCategory, Tier

DEMO_PASSWORD = "hotline-demo-2026"


def demo_institutions(session: Session) -> list[Institution]:
    """The first two active financing institutions (the demo catalogue's banks)."""
    query = (
        select(Institution)
        .join(InstitutionCategory, col(InstitutionCategory.institution_id) == col(Institution.id))
        .where(
            InstitutionCategory.category_key == "financing",
            Institution.tier == Tier.institution,
            col(Institution.active).is_(True),
        )
        .order_by(col(Institution.id))
        .limit(2)
    )
    return list(session.exec(query).all())


def district_window(session: Session, district_code: str) -> Institution | None:
    return session.exec(
        select(Institution)
        .where(
            Institution.tier == Tier.district_window,
            Institution.district_code == district_code,
            col(Institution.active).is_(True),
        )
        .order_by(col(Institution.id))
    ).first()


def seed(session: Session, password: str = DEMO_PASSWORD) -> list[str]:
    """Create the demo users that do not exist yet; returns a line per user."""
    banks = demo_institutions(session)
    wanted: list[tuple[str, str, int | None]] = [
        ("agent", "agent", None),
        ("agent2", "agent", None),
        ("supervisor", "supervisor", None),
        ("admin", "admin", None),
    ]
    for index, bank in enumerate(banks, start=1):
        wanted.append((f"inst{index}", "institution", bank.id))
    # Tiered maintenance in the demo: the window of inst1's district maintains inst1's publics.
    window = district_window(session, banks[0].district_code) if banks else None
    if window is not None:
        wanted.append(("district1", "institution", window.id))
    lines = []
    for username, role, institution_id in wanted:
        existing = session.exec(select(User).where(User.username == username)).first()
        if existing is None:
            create_user(session, username, role, institution_id=institution_id, password=password)
            state = "created"
        else:
            state = "exists"
        where = ""
        if institution_id is not None:
            found = session.get(Institution, institution_id)
            where = f" ({found.name_zh})" if found else ""
        lines.append(f"{username:<11} {role:<12} {state}{where}")
    return lines


def seed_demo() -> None:
    """Create demo users (agent, agent2, supervisor, admin, inst1, inst2, district1) for
    `make run`."""
    from hotline.cli_users import _configure
    from kb.db import session_scope

    _configure()
    with session_scope() as session:
        lines = seed(session)
    for line in lines:
        typer.echo(line)
    typer.echo(f"demo password for all of them: {DEMO_PASSWORD}")


def register(users_app: typer.Typer) -> None:
    users_app.command("seed-demo")(seed_demo)
