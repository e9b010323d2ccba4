"""Measures of the service, per institution, district or category, over a period.

The cohort is the service tickets opened in ``[since, until)``; complaints are counted against
the group of the ticket they complain about. The counts are computed in SQL (one GROUP BY per
family, medians with window functions); each rate is then one formula below, defined once.
A rate with a zero denominator is ``None`` (not measured), never 0. The medians are wall-clock
hours: to accept from the (latest) dispatch, to resolve from the intake, as the firm waits them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from tickets.models import Revisit, Ticket, TicketKind
from tickets.revisit import answered_codes, reached_codes

GroupBy = Literal["institution", "district", "category"]
GROUPINGS: tuple[str, ...] = ("institution", "district", "category")
SATISFIED_FROM = 4  # 满意: a score of 4 or 5 on the 1..5 scale


# --- the formulas --------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def on_time_acceptance_rate(accepted_on_time: int, acceptance_due: int) -> float | None:
    """按时签收率: tickets accepted by their accept-due time / tickets whose acceptance fell due
    (accepted, or not accepted and the due time passed before the period's end)."""
    return _ratio(accepted_on_time, acceptance_due)


def on_time_resolution_rate(resolved_on_time: int, resolution_due: int) -> float | None:
    """按时办结率: tickets resolved by their resolve-due time / tickets whose resolution fell due
    (resolved, or not resolved and the due time passed before the period's end)."""
    return _ratio(resolved_on_time, resolution_due)


def revisit_rate(revisits_completed: int, resolved: int) -> float | None:
    """回访率: revisits completed (the client was reached: met, partly, not_met or refused) /
    tickets resolved. An unreachable client lowers it."""
    return _ratio(revisits_completed, resolved)


def satisfaction_rate(satisfied: int, scored: int) -> float | None:
    """满意率: answered revisits scoring 4 or 5 / answered revisits that gave a score."""
    return _ratio(satisfied, scored)


def demand_satisfaction_rate(met: int, answered: int) -> float | None:
    """需求满足率: revisits answering "need met" / revisits answered (met, partly, not_met)."""
    return _ratio(met, answered)


def reopen_rate(reopened: int, resolved: int) -> float | None:
    """发回重办率: tickets reopened at least once / tickets resolved."""
    return _ratio(reopened, resolved)


def complaint_rate(complaints: int, volume: int) -> float | None:
    """投诉率: complaints opened in the period about the group's tickets / the group's volume."""
    return _ratio(complaints, volume)


# --- the result ----------------------------------------------------------------------------


@dataclass
class GroupMeasures:
    key: str | int | None
    volume: int = 0
    acceptance_due: int = 0
    accepted_on_time: int = 0
    resolution_due: int = 0
    resolved_on_time: int = 0
    resolved: int = 0
    revisits_completed: int = 0
    answered: int = 0
    scored: int = 0
    satisfied: int = 0
    met: int = 0
    reopened: int = 0
    complaints: int = 0
    median_hours_to_accept: float | None = None
    median_hours_to_resolve: float | None = None

    @property
    def rates(self) -> dict[str, float | None]:
        return {
            "on_time_acceptance_rate": on_time_acceptance_rate(
                self.accepted_on_time, self.acceptance_due
            ),
            "on_time_resolution_rate": on_time_resolution_rate(
                self.resolved_on_time, self.resolution_due
            ),
            "revisit_rate": revisit_rate(self.revisits_completed, self.resolved),
            "satisfaction_rate": satisfaction_rate(self.satisfied, self.scored),
            "demand_satisfaction_rate": demand_satisfaction_rate(self.met, self.answered),
            "reopen_rate": reopen_rate(self.reopened, self.resolved),
            "complaint_rate": complaint_rate(self.complaints, self.volume),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), **self.rates}


# --- the SQL -------------------------------------------------------------------------------


def _group_column(entity: Any, by: str) -> Any:
    if by == "institution":
        return entity.institution_id
    if by == "district":
        return entity.district_code
    if by == "category":
        return entity.category
    raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the database's own dialect."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _cohort(since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(
        col(Ticket.kind) == TicketKind.service,
        col(Ticket.created_at) >= since,
        col(Ticket.created_at) < until,
    )


def compute(
    session: Session, since: datetime, until: datetime, by: GroupBy = "institution"
) -> dict[str | int | None, GroupMeasures]:
    """The measures of every group with tickets in the period, keyed by the group's key
    (institution id, district code or category key; ``None`` for tickets without one)."""
    group = _group_column(Ticket, by)
    answered = answered_codes()
    reached = reached_codes()
    counts = session.execute(
        select(
            group.label("key"),
            func.count().label("volume"),
            _count(
                and_(
                    col(Ticket.accept_due_at).is_not(None),
                    or_(
                        col(Ticket.accepted_at).is_not(None),
                        col(Ticket.accept_due_at) < until,
                    ),
                )
            ).label("acceptance_due"),
            _count(
                and_(
                    col(Ticket.accepted_at).is_not(None),
                    col(Ticket.accepted_at) <= col(Ticket.accept_due_at),
                )
            ).label("accepted_on_time"),
            _count(
                and_(
                    col(Ticket.resolve_due_at).is_not(None),
                    or_(
                        col(Ticket.resolved_at).is_not(None),
                        col(Ticket.resolve_due_at) < until,
                    ),
                )
            ).label("resolution_due"),
            _count(
                and_(
                    col(Ticket.resolved_at).is_not(None),
                    col(Ticket.resolved_at) <= col(Ticket.resolve_due_at),
                )
            ).label("resolved_on_time"),
            _count(col(Ticket.resolved_at).is_not(None)).label("resolved"),
            _count(col(Ticket.revisit_outcome).in_(reached)).label("revisits_completed"),
            _count(col(Ticket.revisit_outcome).in_(answered)).label("answered"),
            _count(
                and_(
                    col(Ticket.revisit_outcome).in_(answered),
                    col(Ticket.satisfaction).is_not(None),
                )
            ).label("scored"),
            _count(
                and_(
                    col(Ticket.revisit_outcome).in_(answered),
                    col(Ticket.satisfaction) >= SATISFIED_FROM,
                )
            ).label("satisfied"),
            _count(col(Ticket.revisit_outcome) == "met").label("met"),
            _count(col(Ticket.reopen_count) > 0).label("reopened"),
        )
        .where(_cohort(since, until))
        .group_by(group)
    ).all()
    results: dict[str | int | None, GroupMeasures] = {}
    for row in counts:
        values = row._asdict()
        results[values["key"]] = GroupMeasures(**values)

    # Complaints: about a ticket, counted in that ticket's group; else in the complaint's own.
    about = aliased(Ticket)
    complaint_group: Any = (
        about.institution_id
        if by == "institution"
        else func.coalesce(_group_column(about, by), _group_column(Ticket, by))
    )
    for key, complaints in session.execute(
        select(complaint_group, func.count())
        .select_from(Ticket)
        .outerjoin(about, col(about.id) == col(Ticket.related_ticket_id))
        .where(
            col(Ticket.kind) == TicketKind.complaint,
            col(Ticket.created_at) >= since,
            col(Ticket.created_at) < until,
        )
        .group_by(complaint_group)
    ).all():
        results.setdefault(key, GroupMeasures(key=key)).complaints = int(complaints)

    for attribute, start, end in (
        ("median_hours_to_accept", Ticket.dispatched_at, Ticket.accepted_at),
        ("median_hours_to_resolve", Ticket.created_at, Ticket.resolved_at),
    ):
        for key, seconds in _medians(session, group, start, end, since, until):
            if key in results and seconds is not None:
                setattr(results[key], attribute, round(float(seconds) / 3600.0, 4))
    return results


def _medians(
    session: Session, group: Any, start: Any, end: Any, since: datetime, until: datetime
) -> list[tuple[Any, float | None]]:
    """The median of ``end - start`` per group: the middle row (or the mean of the two middle
    rows) by ROW_NUMBER over the group, in SQL on both SQLite and PostgreSQL."""
    durations = (
        select(group.label("key"), _seconds(session, start, end).label("seconds"))
        .where(_cohort(since, until), col(start).is_not(None), col(end).is_not(None))
        .subquery()
    )
    ranked = select(
        durations.c.key,
        durations.c.seconds,
        func.row_number()
        .over(partition_by=durations.c.key, order_by=durations.c.seconds)
        .label("position"),
        func.count().over(partition_by=durations.c.key).label("size"),
    ).subquery()
    # Position p is a middle one when 2p is n, n+1 or n+2 (odd n: one row; even n: two).
    middle = and_(
        ranked.c.position * 2 >= ranked.c.size,
        ranked.c.position * 2 <= ranked.c.size + literal(2),
    )
    return [
        (key, value)
        for key, value in session.execute(
            select(ranked.c.key, func.avg(ranked.c.seconds)).where(middle).group_by(ranked.c.key)
        ).all()
    ]


def quality_inputs(session: Session) -> dict[int, tuple[float, int]]:
    """Per institution, from every answered revisit with a score: (mean satisfaction 1..5,
    number of such revisits). Unreachable and refused revisits do not count against the
    institution. Routing's quality score (``routing.quality.QualityTable.from_ratings``) takes
    exactly this mapping."""
    rows = session.execute(
        select(col(Revisit.institution_id), func.avg(Revisit.satisfaction), func.count())
        .where(
            col(Revisit.institution_id).is_not(None),
            col(Revisit.outcome).in_(answered_codes()),
            col(Revisit.satisfaction).is_not(None),
        )
        .group_by(col(Revisit.institution_id))
    ).all()
    return {int(inst): (float(mean), int(count)) for inst, mean, count in rows}
