"""The five publics (五公开) an institution maintains itself, and who may maintain them.

Every institution publishes its service content, process, standards, fees and hours, in Chinese
and English. They are edited in the institution portal, one named operation
(:meth:`PublicsService.edit_publics`) that writes the fields and their history
(``catalogue_change``, action ``edit``) in the same transaction, and refuses an edit made on
values someone else has changed since they were read (optimistic concurrency on
``Institution.updated_at``), so no edit silently overwrites another.

Who may edit institution X (tiered maintenance, 分级维护: the city and each district maintain
their own):

- staff of X (an institution user bound to X);
- staff of a district window platform, for every entry of the platform's district except the
  municipal platform (its institutions, its cluster windows, the window itself): the district
  maintains its own tier;
- supervisors and admins, for any entry: they are the municipal platform's people and maintain
  the city tier, and correct what a district cannot;
- nobody else: agents handle cases, not the catalogue; system actors load the data files
  (``kb load``) and never edit through here.

kb sits below tickets, so the acting user is anything with a ``name``, a ``role`` (the string
values of ``tickets.models.Role``) and an ``institution_id``: ``tickets.service.Actor`` fits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from kb.db import as_utc, utcnow
from kb.models import CatalogueChange, Institution, Tier
from kb.repository import CatalogueRepository, catalogue_repository

PUBLICS = ("content", "process", "standards", "fees", "hours")
LANGUAGES = ("zh", "en")
FIELDS = tuple(f"{public}_{lang}" for public in PUBLICS for lang in LANGUAGES)
# hours_* are VARCHAR(200) columns; the others are TEXT, bounded so a page stays readable.
MAX_CHARS = {name: 200 if name.startswith("hours_") else 2000 for name in FIELDS}
HISTORY_LIMIT = 50
# Roles that maintain the whole catalogue (see the module docstring).
CITY_ROLES = frozenset({"supervisor", "admin"})
# Control characters other than tab and newline: invisible on a page, and NUL breaks PostgreSQL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Editor(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def institution_id(self) -> int | None: ...


class PublicsError(Exception):
    """An edit of the five publics was refused; the message says why."""


class UnknownInstitution(PublicsError, LookupError):
    pass


class EditNotAllowed(PublicsError, PermissionError):
    pass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str  # "empty", "too_long" or "unknown"
    limit: int = 0
    length: int = 0

    def __str__(self) -> str:
        if self.code == "too_long":
            return f"{self.field}: at most {self.limit} characters (got {self.length})"
        if self.code == "empty":
            return f"{self.field}: may not be empty"
        return f"{self.field}: not one of the five publics ({', '.join(FIELDS)})"


class InvalidPublics(PublicsError, ValueError):
    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    @property
    def fields(self) -> set[str]:
        return {p.field for p in self.problems}


class StalePublics(PublicsError):
    """Someone changed the institution since the editor read it; carries who, when and the
    values as they are now, for the editor to start again from."""

    def __init__(
        self,
        code: str,
        *,
        who: str,
        at: datetime,
        current: dict[str, str],
        updated_at: datetime,
    ) -> None:
        self.code, self.who, self.at = code, who, at
        self.current, self.updated_at = current, updated_at
        super().__init__(
            f"institution {code} was changed by {who} meanwhile (at {at.isoformat()}); "
            "nothing was saved: start again from its current values"
        )


def normalise(value: str) -> str:
    """What a browser's textarea sends (CRLF line ends, stray control characters, trailing
    blanks) made comparable with what is stored, so an unchanged field stays unchanged."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def values_of(institution: Institution) -> dict[str, str]:
    return {name: str(getattr(institution, name) or "") for name in FIELDS}


class PublicsService:
    def __init__(self, repository: CatalogueRepository) -> None:
        self.repository = repository

    # -- who may edit ---------------------------------------------------------------------------

    def may_edit(self, session: Session, editor: Editor, institution: Institution) -> bool:
        role = str(editor.role)
        if role in CITY_ROLES:
            return True
        if role != "institution" or editor.institution_id is None:
            return False
        if editor.institution_id == institution.id:
            return True
        platform = self.window_of(session, editor)
        return (
            platform is not None
            and institution.tier != Tier.municipal
            and institution.district_code == platform.district_code
        )

    def window_of(self, session: Session, editor: Editor) -> Institution | None:
        """The district window platform the editor works for, if they do."""
        if str(editor.role) != "institution" or editor.institution_id is None:
            return None
        bound = self.repository.institution(session, editor.institution_id)
        return bound if bound is not None and bound.tier == Tier.district_window else None

    def editable(self, session: Session, editor: Editor, institution_id: int) -> Institution:
        """The institution, if it exists and the editor may edit it."""
        institution = self.repository.institution(session, institution_id)
        if institution is None:
            raise UnknownInstitution(f"no institution with id {institution_id}")
        if not self.may_edit(session, editor, institution):
            raise EditNotAllowed(f"{editor.name} may not edit institution {institution.code}")
        return institution

    def district_entries(self, session: Session, district_code: str) -> list[Institution]:
        """What a district maintains: every entry of the district but the municipal platform,
        the window first, then cluster windows, then institutions."""
        order = {Tier.district_window: 0, Tier.cluster_window: 1, Tier.institution: 2}
        found = [
            i
            for i in self.repository.institutions(session, district=district_code)
            if i.tier != Tier.municipal
        ]
        return sorted(found, key=lambda i: (order.get(i.tier, 3), i.code))

    # -- editing --------------------------------------------------------------------------------

    @staticmethod
    def validate(changes: Mapping[str, str]) -> dict[str, str]:
        """The changes, normalised; every problem at once, each naming its field."""
        problems: list[FieldProblem] = []
        clean: dict[str, str] = {}
        for name, raw in changes.items():
            if name not in MAX_CHARS:
                problems.append(FieldProblem(name, "unknown"))
                continue
            value = normalise(str(raw))
            if not value:
                problems.append(FieldProblem(name, "empty"))
            elif len(value) > MAX_CHARS[name]:
                problems.append(FieldProblem(name, "too_long", MAX_CHARS[name], len(value)))
            clean[name] = value
        if problems:
            problems.sort(key=lambda p: FIELDS.index(p.field) if p.field in FIELDS else 99)
            raise InvalidPublics(problems)
        return clean

    def edit_publics(
        self,
        session: Session,
        editor: Editor,
        institution_id: int,
        changes: Mapping[str, str],
        expected_updated_at: datetime,
    ) -> dict[str, list[str]]:
        """Write the changed fields of the five publics and their history row; returns
        ``{field: [old, new]}`` for the fields that changed (empty: nothing to write).

        ``expected_updated_at`` is the institution's ``updated_at`` when the editor read it;
        if it moved since, :class:`StalePublics` is raised and nothing is written."""
        # Locked (PostgreSQL; SQLite's write transaction is already exclusive) so a concurrent
        # edit waits here and then sees the bumped updated_at instead of overwriting.
        institution = self.repository.institution_for_update(session, institution_id)
        if institution is None:
            raise UnknownInstitution(f"no institution with id {institution_id}")
        if not self.may_edit(session, editor, institution):
            raise EditNotAllowed(f"{editor.name} may not edit institution {institution.code}")
        current_stamp = as_utc(institution.updated_at)
        if current_stamp != as_utc(expected_updated_at):
            last = self.repository.last_change(session, "institution", institution.code)
            raise StalePublics(
                institution.code,
                who=last.actor if last is not None else "?",
                at=as_utc(last.at) if last is not None else current_stamp,
                current=values_of(institution),
                updated_at=current_stamp,
            )
        clean = self.validate(changes)
        diff = {
            name: [str(getattr(institution, name) or ""), value]
            for name, value in clean.items()
            if str(getattr(institution, name) or "") != value
        }
        if not diff:
            return {}
        for name, (_old, new) in diff.items():
            setattr(institution, name, new)
        # Strictly later, even on a coarse clock, so the next stale check cannot miss this edit.
        now = utcnow()
        institution.updated_at = max(now, current_stamp + timedelta(microseconds=1))
        session.add(institution)
        session.add(
            CatalogueChange(
                at=now,
                actor=editor.name[:96],
                entity="institution",
                entity_key=institution.code,
                action="edit",
                changes=diff,
            )
        )
        session.flush()
        return diff

    def history(self, session: Session, institution: Institution) -> Sequence[CatalogueChange]:
        """The institution's catalogue history, newest first (loads and edits alike)."""
        return self.repository.changes_of(
            session, "institution", institution.code, limit=HISTORY_LIMIT
        )


publics_service = PublicsService(catalogue_repository)
