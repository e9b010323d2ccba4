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
    # The score's other inputs: share of capacity in use (0..1) and the Bayesian mean
    # satisfaction from revisits (1..5, the prior mean when there is none).
    load: float | None = None
    satisfaction: float | None = None


@dataclass(frozen=True)
class RoutingDecision:
    institution_id: int
    tier: str
    distance_km: float | None
    score: float
    reasons: list[Reason]
    candidates: list[Candidate]
    inputs: dict[str, Any] = field(default_factory=dict)
    institution_code: str = ""
    name_zh: str = ""
    name_en: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: the ticket stores this as its routing record."""
        return asdict(self)

    def reason(self, code: str) -> Reason | None:
        """The first reason with this code, if any."""
        return next((r for r in self.reasons if r.code == code), None)
