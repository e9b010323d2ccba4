"""Bulk benchmark data: N tickets with their firms, events, routing records, SLA clocks, revisits,
SMS and outbox rows, spread over the last ``--days`` days, as the app itself would have left them.

Each ticket follows a plausible life (open → dispatch → accept → start → resolve → revisit →
closed, with declines and re-routing, missed acceptance clocks escalated, revisits that reopen
the case, cancellations, complaints about earlier tickets) cut at "now": a ticket opened an hour
ago is still dispatched, one from last spring is closed. Institutions and routing records come
from the real router run once per (category, district) over the loaded catalogue; the SLA clocks
and revisit calls from the real working calendar (cached per 15-minute slot: the times are
within 15 minutes of what the service would compute, which is all a benchmark needs). Ticket
numbers use the app's format and per-day sequence (``ticket_counter`` is advanced, so tickets
opened by the app afterwards never collide), ids continue the tables' sequences, and
``institution.open_cases`` grows by the tickets that hold a unit of capacity.

Rows are written with PostgreSQL ``COPY`` (multi-row inserts on SQLite), one transaction per
chunk: an interrupted run leaves whole tickets only. Running it again adds N more (the
benchmark grows 10k → 100k → 1M this way).

Run::

    .venv/bin/python benchmarks/generate_tickets.py 100000 \\
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench] [--days 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, func, select, text  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlmodel import Session, col  # noqa: E402
from sqlmodel import select as model_select  # noqa: E402

import hotline.models_registry  # noqa: E402, F401  (every table on the metadata)
from kb.models import Category, Cluster, District, Institution  # noqa: E402
from tickets.models import (  # noqa: E402
    Firm,
    InboundMessage,
    OutboxMessage,
    Revisit,
    RoutingRecord,
    Ticket,
    TicketCounter,
    TicketEvent,
)
from tickets.numbers import format_number  # noqa: E402
from tickets.revisit import first_call_at  # noqa: E402
from tickets.service import ticket_service  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
MAIN_NUMBER = "+862312345"
SLOT = timedelta(minutes=15)

# Shares of the hotline's traffic (weights, not percentages).
CHANNELS = {"voice": 45, "sms": 40, "web": 8, "open311": 7}
CATEGORIES = {
    "financing": 30,
    "information": 15,
    "startup": 10,
    "talent": 10,
    "market": 10,
    "legal": 9,
    "technology": 9,
    "management": 7,
}
TOPICS = {
    "financing": "申请一笔贷款扩大生产",
    "information": "了解最新的惠企政策",
    "startup": "办理新公司的注册登记",
    "talent": "招聘技术工人和申请人才补贴",
    "market": "参加展会开拓外地市场",
    "legal": "咨询一起合同纠纷",
    "technology": "申报高新技术企业认定",
    "management": "请专家诊断企业管理",
}
OUTCOMES = {"met": 70, "partly": 8, "not_met": 5, "refused": 5, "unreachable": 12}
COMPLAINT_SHARE = 0.02
UNCLASSIFIED_SHARE = 0.015
CANCEL_SHARE = 0.03
DECLINE_SHARE = 0.04
SLOW_SHARE = 0.10  # accepted after the acceptance clock ran out (escalated first)
REPEAT_CALLER_SHARE = 0.6


def _weighted(choices: dict[str, int]) -> tuple[list[str], list[int]]:
    return list(choices), list(choices.values())


@dataclass
class Catalogue:
    """What the generator draws from: the loaded catalogue and the router's choices."""

    districts: list[str]
    district_weights: list[int]
    district_names: dict[str, str]
    clusters: dict[str, list[str]]
    categories: list[str]
    decisions: dict[tuple[str, str], dict[str, Any]]
    alternatives: dict[tuple[str, str], dict[str, Any]]


def _decision_row(decision: Any) -> dict[str, Any]:
    record = decision.to_dict()
    return {
        "institution_id": decision.institution_id,
        "tier": decision.tier,
        "distance_km": decision.distance_km,
        "score": decision.score,
        "inputs": PreDumped(record["inputs"]),
        "reasons": PreDumped(record["reasons"]),
        "candidates": PreDumped(record["candidates"]),
    }


def load_catalogue(session: Session) -> Catalogue:
    """Routing's choice (and next best, for declines) for every category and district."""
    from routing.match import match

    districts = session.exec(model_select(District).order_by(col(District.code))).all()
    if not districts:
        raise SystemExit("the catalogue is empty: run `hotline kb load` first")
    categories = [c.key for c in session.exec(model_select(Category).order_by(col(Category.dtmf)))]
    clusters: dict[str, list[str]] = {}
    for cluster in session.exec(model_select(Cluster)):
        clusters.setdefault(cluster.district_code, []).append(cluster.code)
    decisions: dict[tuple[str, str], dict[str, Any]] = {}
    alternatives: dict[tuple[str, str], dict[str, Any]] = {}
    for category in categories:
        for district in districts:
            first = match(session, category=category, place=district.code)
            decisions[(category, district.code)] = _decision_row(first)
            second = match(
                session, category=category, place=district.code, exclude=[first.institution_id]
            )
            alternatives[(category, district.code)] = _decision_row(second)
    # Districts carry more firms than the outlying counties.
    weights = [4 if d.kind == "district" else 1 for d in districts]
    return Catalogue(
        districts=[d.code for d in districts],
        district_weights=weights,
        district_names={d.code: d.name_zh for d in districts},
        clusters=clusters,
        categories=[c for c in CATEGORIES if c in categories],
        decisions=decisions,
        alternatives=alternatives,
    )


class Clocks:
    """SLA due times and revisit call times from the real calendar, cached per 15-minute slot."""

    def __init__(self) -> None:
        self.calendar = ticket_service.calendar
        self.policy = ticket_service.policy
        self._due: dict[tuple[str, datetime], tuple[timedelta, timedelta, timedelta]] = {}
        self._revisit: dict[datetime, timedelta] = {}

    @staticmethod
    def _slot(moment: datetime) -> datetime:
        return moment - timedelta(
            minutes=moment.minute % 15, seconds=moment.second, microseconds=moment.microsecond
        )

    def due(self, category: str, start: datetime) -> tuple[datetime, datetime, datetime]:
        slot = self._slot(start)
        key = (category, slot)
        found = self._due.get(key)
        if found is None:
            due = self.policy.due_times(self.calendar, category, slot)
            found = (due.accept - slot, due.contact - slot, due.resolve - slot)
            self._due[key] = found
        return (start + found[0], start + found[1], start + found[2])

    def revisit_at(self, resolved: datetime) -> datetime:
        slot = self._slot(resolved)
        found = self._revisit.get(slot)
        if found is None:
            found = first_call_at(self.calendar, self.policy.revisit, slot) - slot
            self._revisit[slot] = found
        return resolved + found


@dataclass
class Rows:
    """One chunk's rows, per table, as dicts of column values."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def count(self, table: str) -> int:
        return len(self.tables.get(table, ()))


TABLES: dict[str, Table] = {
    str(model.__tablename__): model.__table__  # type: ignore[union-attr]
    for model in (Firm, Ticket, TicketEvent, RoutingRecord, Revisit, InboundMessage, OutboxMessage)
}
TABLE_ORDER = (
    "firm",
    "ticket",
    "ticket_event",
    "routing_record",
    "revisit",
    "inbound_message",
    "outbox",
)
# Values for the columns a row leaves out (the models' own defaults).
DEFAULTS: dict[str, dict[str, Any]] = {
    "firm": {"name": "", "industry": "", "language": "zh", "sms_opted_out": False},
    "ticket": {
        "kind": "service",
        "summary": "",
        "language": "zh",
        "version": 1,
        "counts_as_open": False,
        "escalation_level": 0,
        "reopen_count": 0,
    },
    "ticket_event": {"note": "", "data": {}},
    "routing_record": {},
    "revisit": {"attempts": 0, "unanswered": 0, "comment": ""},
    "inbound_message": {
        "account_sid": "AC" + "0" * 32,
        "num_media": 0,
        "reply": "",
        "opt_out_type": "",
    },
    "outbox": {"queue": "default", "result": ""},
}


class PreDumped:
    """A JSON value shared by many rows (a routing decision's reasons), dumped once."""

    __slots__ = ("value", "text")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.text = _escape(json.dumps(value, ensure_ascii=False, default=str))


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escape(text: str) -> str:
    return (
        text.translate(_ESCAPES)
        if ("\\" in text or "\t" in text or "\n" in text or "\r" in text)
        else text
    )


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PreDumped):
        return value.text
    if isinstance(value, dict | list):
        return _escape(json.dumps(value, ensure_ascii=False, default=str))
    return str(value)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, PreDumped) else value


@dataclass
class Ids:
    """The next id of every table (explicit ids, so related rows are written in one pass)."""

    next: dict[str, int]

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


class Life:
    """One ticket's history, cut at ``now``: its column values and the rows of each step."""

    def __init__(self, gen: Generator, ticket: dict[str, Any]) -> None:
        self.gen = gen
        self.ticket = ticket
        self.rows = gen.rows
        self.stopped = False
        self.version = 1

    def step(
        self,
        at: datetime,
        action: str,
        actor: str,
        role: str,
        *,
        to: str | None = None,
        changes: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        note: str = "",
    ) -> bool:
        """Record the step if it happened by now; False (and nothing after it) if not yet."""
        if self.stopped or at > self.gen.now:
            self.stopped = True
            return False
        before = self.ticket["state"]
        if to is not None:
            self.ticket["state"] = to
        if changes:
            self.ticket.update(changes)
        if action != "open":
            self.version += 1
        self.ticket["version"] = self.version
        self.ticket["updated_at"] = at
        self.rows.add(
            "ticket_event",
            {
                "id": self.gen.ids.take("ticket_event"),
                "ticket_id": self.ticket["id"],
                "at": at,
                "actor": actor,
                "actor_role": role,
                "action": action,
                "from_state": None if action == "open" else before,
                "to_state": self.ticket["state"],
                "note": note,
                "data": data or {},
            },
        )
        return True


class Generator:
    def __init__(
        self,
        engine: Engine,
        catalogue: Catalogue,
        *,
        now: datetime,
        days: int,
        seed: int,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.now = now
        self.start = now - timedelta(days=days)
        self.seed = seed
        self.random = random.Random(seed)
        self.clocks = Clocks()
        self.zone = ZoneInfo(ticket_service.zone.key)
        self.rows = Rows()
        self.ids = Ids({})
        self.counters: dict[str, int] = {}
        self.firms: list[tuple[int, str, str, str | None]] = []
        self.service_ids: list[int] = []
        self.open_cases: Counter[int] = Counter()
        self.postgres = engine.dialect.name == "postgresql"
        self._channels = _weighted(CHANNELS)
        self._categories = _weighted({k: CATEGORIES[k] for k in catalogue.categories})
        self._outcomes = _weighted(OUTCOMES)

    # --- the run ---------------------------------------------------------------------------

    def run(
        self, count: int, *, chunk: int = 5000, progress: Callable[[int], None] | None = None
    ) -> Counter[str]:
        """Add ``count`` tickets; returns the rows written per table."""
        written: Counter[str] = Counter()
        with self.engine.connect() as conn:
            self._load_state(conn)
            conn.rollback()
        # Another run over the same database draws other tickets, not the same ones again.
        self.random.seed(self.seed * 1_000_003 + self.ids.next["ticket"])
        done = 0
        while done < count:
            size = min(chunk, count - done)
            self.rows = Rows()
            self.open_cases = Counter()
            counters_before = dict(self.counters)
            ids_before = dict(self.ids.next)
            try:
                for created in sorted(self._moment() for _ in range(size)):
                    self._ticket(created)
                with self.engine.begin() as conn:
                    self._write(conn)
            except BaseException:
                # Nothing of the chunk was committed: forget its numbers and ids too.
                self.counters, self.ids.next = counters_before, ids_before
                raise
            for table, rows in self.rows.tables.items():
                written[table] += len(rows)
            done += size
            if progress:
                progress(size)
        return written

    def _load_state(self, conn: Connection) -> None:
        for name in TABLE_ORDER:
            table = TABLES[name]
            top = conn.execute(select(func.max(table.c.id))).scalar()
            self.ids.next[name] = int(top or 0) + 1
        counter = TicketCounter.__table__  # type: ignore[attr-defined]
        self.counters = {str(row[0]): int(row[1]) for row in conn.execute(select(counter))}

    def _moment(self) -> datetime:
        """When a ticket is opened: any time in the span, mostly in office hours."""
        span = (self.now - self.start).total_seconds()
        while True:
            moment = self.start + timedelta(seconds=self.random.random() * span)
            hour = moment.astimezone(self.zone).hour
            if 8 <= hour < 20 or self.random.random() < 0.15:
                return moment

    # --- one ticket --------------------------------------------------------------------------

    def _firm(self) -> tuple[int, str, str, str | None]:
        r = self.random
        if self.firms and r.random() < REPEAT_CALLER_SHARE:
            return self.firms[r.randrange(len(self.firms))]
        firm_id = self.ids.take("firm")
        district = r.choices(self.catalogue.districts, self.catalogue.district_weights)[0]
        clusters = self.catalogue.clusters.get(district)
        cluster = r.choice(clusters) if clusters and r.random() < 0.08 else None
        phone = f"+86139{firm_id:08d}"
        self.rows.add(
            "firm",
            {
                "id": firm_id,
                "phone": phone,
                "name": f"演示企业{firm_id}",
                "district_code": district,
                "cluster_code": cluster,
                "industry": r.choice(("制造", "零售", "软件", "物流", "餐饮", "建筑")),
                "language": "en" if r.random() < 0.04 else "zh",
                "created_at": self.start,
            },
        )
        firm = (firm_id, phone, district, cluster)
        self.firms.append(firm)
        return firm

    def _number(self, created: datetime) -> str:
        day = created.astimezone(self.zone).strftime("%y%m%d")
        sequence = self.counters.get(day, 0) + 1
        self.counters[day] = sequence
        return format_number(day, sequence)

    def _ticket(self, created: datetime) -> None:
        r = self.random
        if self.service_ids and r.random() < COMPLAINT_SHARE:
            self._complaint(created)
            return
        firm_id, phone, district, cluster = self._firm()
        channel = r.choices(*self._channels)[0]
        category = None if r.random() < UNCLASSIFIED_SHARE else r.choices(*self._categories)[0]
        ticket_id = self.ids.take("ticket")
        summary = (
            f"我们是{self.catalogue.district_names[district]}的企业，想{TOPICS[category]}"
            if category
            else "想咨询一下，不太清楚该找哪个部门"
        )
        ticket: dict[str, Any] = {
            **DEFAULTS["ticket"],
            "id": ticket_id,
            "number": self._number(created),
            "kind": "service",
            "state": "new",
            "channel": channel,
            "category": category,
            "district_code": district,
            "cluster_code": cluster,
            "institution_id": None,
            "firm_id": firm_id,
            "caller_phone": phone,
            "language": "zh",
            "summary": summary,
            "classification": {
                "category": category,
                "confidence": round(0.55 + r.random() * 0.44, 2) if category else 0.2,
                "alternatives": [],
                "complaint": False,
            },
            "created_at": created,
            "updated_at": created,
        }
        self.rows.add("ticket", ticket)
        self.service_ids.append(ticket_id)
        if channel == "sms":
            self.rows.add(
                "inbound_message",
                {
                    "id": self.ids.take("inbound_message"),
                    "message_sid": f"SMbench{ticket_id:026d}",
                    "from_number": phone,
                    "to_number": MAIN_NUMBER,
                    "body": summary,
                    "received_at": created,
                    "answered_at": created,
                    "ticket_id": ticket_id,
                    "reply": f"已受理，工单号 {ticket['number']}",
                },
            )
        life = Life(self, ticket)
        life.step(
            created,
            "open",
            f"system:{channel}",
            "system",
            data={"channel": channel, "category": category, "district": district},
        )
        self._live(life, category, district, created)
        if ticket["counts_as_open"] and ticket["institution_id"]:
            self.open_cases[ticket["institution_id"]] += 1

    def _live(self, life: Life, category: str | None, district: str, created: datetime) -> None:
        r = self.random
        ticket = life.ticket
        if r.random() < CANCEL_SHARE:
            reason = r.choice(("spam", "duplicate", "withdrawn"))
            life.step(
                created + timedelta(minutes=r.uniform(5, 240)),
                "cancel",
                "user:agent",
                "agent",
                to="cancelled",
                changes={"closure": reason, "closed_at": created},
                note="演示数据",
            )
            return
        if category is None:
            # Unclassified: an agent reads it, picks the category, dispatches.
            at = created + timedelta(minutes=r.uniform(10, 180))
            category = r.choices(*self._categories)[0]
            if not life.step(
                at, "reclassify", "user:agent", "agent", changes={"category": category}
            ):
                return
            created = at
        delay = (
            timedelta(seconds=r.uniform(5, 40))
            if ticket["channel"] in ("sms", "voice")
            else timedelta(minutes=r.uniform(10, 240))
        )
        decision = self.catalogue.decisions[(category, district)]
        moment = self._dispatch(life, decision, category, created + delay, "system:routing")
        if moment is None:
            return
        for cycle in range(2):
            if r.random() < DECLINE_SHARE and cycle == 0:
                moment += timedelta(minutes=r.lognormvariate(4.0, 0.8))
                if not life.step(
                    moment,
                    "decline",
                    f"user:staff-{ticket['institution_id']}",
                    "institution",
                    to="declined",
                    changes={"counts_as_open": False},
                    data={"institution_id": ticket["institution_id"]},
                    note="不在本机构服务范围",
                ):
                    return
                decision = self.catalogue.alternatives[(category, district)]
                found = self._dispatch(life, decision, category, moment, "system:reroute")
                if found is None:
                    return
            staff = f"user:staff-{ticket['institution_id']}"
            accept_due = ticket["accept_due_at"]
            if r.random() < SLOW_SHARE:
                if not life.step(
                    accept_due,
                    "escalate",
                    "system:sla",
                    "system",
                    to="escalated",
                    changes={"escalation_level": 1, "escalated_at": accept_due},
                    data={"clock": "accept"},
                ):
                    return
                self._sla_result(life, "accept", "escalated")
                moment = accept_due + timedelta(minutes=r.lognormvariate(4.5, 0.7))
            else:
                moment += timedelta(minutes=r.lognormvariate(4.2, 0.9))
                moment = min(moment, accept_due - timedelta(minutes=1))
            if not life.step(
                moment,
                "accept",
                staff,
                "institution",
                to="accepted",
                changes={"accepted_at": moment},
            ):
                return
            moment += timedelta(minutes=r.lognormvariate(4.5, 0.8))
            if not life.step(
                moment,
                "start",
                staff,
                "institution",
                to="in_progress",
                changes={"first_contact_at": moment},
            ):
                return
            moment += timedelta(hours=r.lognormvariate(3.6, 0.7))
            resolved_by = ticket["institution_id"]
            if not life.step(
                moment,
                "resolve",
                staff,
                "institution",
                to="resolved",
                changes={"resolved_at": moment, "counts_as_open": False},
                note="已办结",
            ):
                return
            if self._revisit(life, resolved_by, moment, second=cycle > 0):
                return  # closed, or the revisit is still to come
            # Reopened by the revisit: the district window sends it back to the institution.
            moment = ticket["updated_at"] + timedelta(hours=r.uniform(1, 6))
            found = self._dispatch(
                life,
                self.catalogue.decisions[(category, district)],
                category,
                moment,
                "user:agent",
            )
            if found is None:
                return
            moment = found

    def _dispatch(
        self,
        life: Life,
        decision: dict[str, Any],
        category: str,
        at: datetime,
        actor: str,
    ) -> datetime | None:
        accept, contact, resolve = self.clocks.due(category, at)
        if not life.step(
            at,
            "dispatch",
            actor,
            "agent" if actor.startswith("user:") else "system",
            to="dispatched",
            changes={
                "institution_id": decision["institution_id"],
                "counts_as_open": True,
                "dispatched_at": at,
                "accepted_at": None,
                "first_contact_at": None,
                "accept_due_at": accept,
                "contact_due_at": contact,
                "resolve_due_at": resolve,
                "escalation_level": 0,
            },
            data={"institution_id": decision["institution_id"], "tier": decision["tier"]},
        ):
            return None
        ticket_id = life.ticket["id"]
        self.rows.add(
            "routing_record",
            {"id": self.ids.take("routing_record"), "ticket_id": ticket_id, "at": at, **decision},
        )
        for clock, due in (("accept", accept), ("contact", contact), ("resolve", resolve)):
            done = due <= self.now
            self.rows.add(
                "outbox",
                {
                    "id": self.ids.take("outbox"),
                    "task": "sla_check",
                    "payload": {"ticket_id": ticket_id, "clock": clock, "due": due.isoformat()},
                    "queue": "high",
                    "run_at": due,
                    "ticket_id": ticket_id,
                    "created_at": at,
                    "relayed_at": at,
                    "done_at": due if done else None,
                    "result": "not missed" if done else "",
                },
            )
        return at

    def _sla_result(self, life: Life, clock: str, result: str) -> None:
        for row in reversed(self.rows.tables["outbox"]):
            if row["ticket_id"] == life.ticket["id"] and row["payload"].get("clock") == clock:
                row["result"] = result
                return

    def _revisit(
        self, life: Life, institution_id: int, resolved: datetime, *, second: bool
    ) -> bool:
        """The revisit after a resolution; True unless it reopened the ticket."""
        r = self.random
        ticket = life.ticket
        due = self.clocks.revisit_at(resolved)
        revisit: dict[str, Any] = {
            "id": self.ids.take("revisit"),
            "ticket_id": ticket["id"],
            "institution_id": institution_id,
            "due_at": due,
            "created_at": resolved,
        }
        self.rows.add("revisit", revisit)
        self.rows.add(
            "outbox",
            {
                "id": self.ids.take("outbox"),
                "task": "revisit_call",
                "payload": {"revisit_id": revisit["id"], "attempt": 1},
                "run_at": due,
                "ticket_id": ticket["id"],
                "created_at": resolved,
                "relayed_at": resolved,
                "done_at": due if due <= self.now else None,
                "result": "called" if due <= self.now else "",
            },
        )
        if not life.step(due, "begin_revisit", "system:revisit", "system", to="revisit_pending"):
            return True
        outcome = "met" if second else r.choices(*self._outcomes)[0]
        attempts = 3 if outcome == "unreachable" else 1
        completed = due + timedelta(minutes=r.uniform(2, 150) + 120 * (attempts - 1))
        revisit.update(
            attempts=attempts,
            unanswered=attempts - 1 if outcome != "unreachable" else 3,
            last_attempt_at=completed,
            next_attempt_at=None,
        )
        if outcome == "unreachable":
            if not life.step(
                completed,
                "close_unreachable",
                "system:revisit",
                "system",
                to="closed",
                changes={
                    "closure": "revisit_unreachable",
                    "closed_at": completed,
                    "revisit_outcome": "unreachable",
                },
            ):
                return True
            revisit.update(
                outcome="unreachable", completed_at=completed, completed_by="system:revisit"
            )
            return True
        satisfaction = None
        if outcome in ("met", "partly", "not_met"):
            satisfaction = {
                "met": r.choice((3, 4, 4, 5, 5, 5)),
                "partly": r.choice((2, 3, 3, 4)),
                "not_met": r.choice((1, 1, 2)),
            }[outcome]
        closes = outcome == "refused" or (outcome == "met" and (satisfaction or 3) >= 3)
        changes: dict[str, Any] = {"revisit_outcome": outcome, "satisfaction": satisfaction}
        if closes:
            changes.update(
                closure="revisit_met" if outcome == "met" else "revisit_refused",
                closed_at=completed,
            )
        else:
            changes.update(reopen_count=ticket["reopen_count"] + 1)
        if not life.step(
            completed,
            "record_revisit",
            "system:revisit",
            "system",
            to="closed" if closes else "reopened",
            changes=changes,
            data={"outcome": outcome, "satisfaction": satisfaction, "recording_url": None},
        ):
            return True
        revisit.update(
            outcome=outcome,
            satisfaction=satisfaction,
            completed_at=completed,
            completed_by="system:revisit",
        )
        return closes

    def _complaint(self, created: datetime) -> None:
        r = self.random
        about_id = self.service_ids[r.randrange(len(self.service_ids))]
        firm_id, phone, district, _cluster = self._firm()
        ticket_id = self.ids.take("ticket")
        ticket: dict[str, Any] = {
            **DEFAULTS["ticket"],
            "id": ticket_id,
            "number": self._number(created),
            "kind": "complaint",
            "state": "new",
            "channel": "monitor",
            "category": None,
            "district_code": district,
            "institution_id": None,
            "firm_id": firm_id,
            "caller_phone": phone,
            "summary": "办理太慢，一直没有人联系我们",
            "classification": {"complaint": True},
            "related_ticket_id": about_id,
            "subject_agent": "user:agent" if r.random() < 0.1 else None,
            "created_at": created,
            "updated_at": created,
        }
        self.rows.add("ticket", ticket)
        life = Life(self, ticket)
        life.step(created, "open", "system:monitor", "system", data={"channel": "monitor"})
        claimed = created + timedelta(hours=r.uniform(0.5, 8))
        if not life.step(
            claimed,
            "claim",
            "user:supervisor",
            "supervisor",
            to="in_progress",
            changes={"assignee": "user:supervisor"},
        ):
            return
        upheld = r.random() < 0.4
        decided = claimed + timedelta(hours=r.uniform(4, 72))
        life.step(
            decided,
            "uphold" if upheld else "dismiss",
            "user:supervisor",
            "supervisor",
            to="closed",
            changes={
                "closure": "complaint_upheld" if upheld else "complaint_dismissed",
                "closed_at": decided,
            },
            note="已核实" if upheld else "经核查，办理符合规定",
        )

    # --- writing -----------------------------------------------------------------------------

    def _write(self, conn: Connection) -> None:
        for name in TABLE_ORDER:
            rows = self.rows.tables.get(name)
            if not rows:
                continue
            table = TABLES[name]
            columns = [c.name for c in table.columns]
            defaults = DEFAULTS[name]
            if self.postgres:
                self._copy(conn, name, columns, rows, defaults)
            else:
                conn.execute(
                    table.insert(),
                    [{c: _plain(row.get(c, defaults.get(c))) for c in columns} for row in rows],
                )
        counter = TicketCounter.__table__  # type: ignore[attr-defined]
        days = {row["number"][2:8] for row in self.rows.tables.get("ticket", ())}
        for day in sorted(days):
            last = self.counters[day]
            updated = conn.execute(
                counter.update()
                .where(counter.c.day == day)
                .values(last=func.max(counter.c.last, last))
                if not self.postgres
                else counter.update()
                .where(counter.c.day == day)
                .values(last=func.greatest(counter.c.last, last))
            )
            if updated.rowcount == 0:
                conn.execute(counter.insert().values(day=day, last=last))
        institution = Institution.__table__  # type: ignore[attr-defined]
        for institution_id, held in self.open_cases.items():
            conn.execute(
                institution.update()
                .where(institution.c.id == institution_id)
                .values(open_cases=institution.c.open_cases + held)
            )
        if self.postgres:
            for name in TABLE_ORDER:
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), :last)"),
                    {"last": self.ids.next[name] - 1},
                )

    @staticmethod
    def _copy(
        conn: Connection,
        name: str,
        columns: list[str],
        rows: list[dict[str, Any]],
        defaults: dict[str, Any],
    ) -> None:
        """COPY in text format, formatted here: several times faster than adapting each value."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        names = ", ".join(f'"{c}"' for c in columns)
        fields = [(c, defaults.get(c)) for c in columns]
        with raw.cursor() as cursor, cursor.copy(f'COPY "{name}" ({names}) FROM STDIN') as copy:  # type: ignore[attr-defined]
            lines = []
            for row in rows:
                lines.append("\t".join([_copy_text(row.get(c, d)) for c, d in fields]))
                if len(lines) >= 2000:
                    copy.write("\n".join(lines) + "\n")
                    lines = []
            if lines:
                copy.write("\n".join(lines) + "\n")


def generate(
    engine: Engine,
    count: int,
    *,
    now: datetime | None = None,
    days: int = 300,
    seed: int = 1,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Add ``count`` tickets (and their rows) to the database behind ``engine``."""
    with Session(engine) as session:
        catalogue = load_catalogue(session)
        session.rollback()
    generator = Generator(engine, catalogue, now=now or datetime.now(UTC), days=days, seed=seed)
    return generator.run(count, chunk=chunk, progress=progress)


def prepare(database_url: str) -> Engine:
    """Migrate, load the catalogue if it is missing, seed the demo users; the engine."""
    from hotline.database import upgrade
    from hotline.settings import load_settings
    from hotline.web.demo import seed
    from hotline.wiring import configure_domain
    from kb import db
    from kb.service import catalogue_service

    settings = load_settings(database_url=database_url)
    configure_domain(settings)
    upgrade(settings)
    engine = db.get_engine()
    with Session(engine) as session:
        if not session.execute(select(func.count()).select_from(Institution)).scalar_one():
            catalogue_service.load(session, actor="bench:generate")
        seed(session)
        session.commit()
    return engine


def ticket_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(TABLES["ticket"])).scalar_one())


def main(argv: list[str] | None = None) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="how many tickets to add")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--days", type=int, default=300, help="spread over the last N days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=5000, help="tickets per transaction")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("count must be at least 1")
    engine = prepare(args.database_url)
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("tickets", total=args.count)
        written = generate(
            engine,
            args.count,
            days=args.days,
            seed=args.seed,
            chunk=args.chunk,
            progress=lambda n: bar.advance(task, n),
        )
    took = time.perf_counter() - started
    print(f"added {written['ticket']} tickets in {took:.1f} s ({written['ticket'] / took:.0f}/s)")
    for name in TABLE_ORDER:
        print(f"  {name}: {written[name]} rows")
    print(f"tickets now: {ticket_count(engine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
