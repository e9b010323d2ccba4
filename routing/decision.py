"""The outcome of routing: who serves the case, why, and who else could."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reason:
    """One term of a decision, said in both languages; ``code`` is stable for machines."""

    code: str
    zh: str
    en: str
    value: float | str | None = None


@dataclass(frozen=True)
class Candidate:
    institution_id: int
    code: str
    name_zh: str
    name_en: str
    tier: str
    distance_km: float | None
    score: float


@dataclass(frozen=True)
class RoutingDecision:
    institution_id: int
    tier: str
    distance_km: float | None
    score: float
    reasons: list[Reason]
    candidates: list[Candidate]
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
