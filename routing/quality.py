"""Measured quality of an institution, from the satisfaction its clients give on revisit calls.

The routing score weighs quality lightly (see routing/README.md). Revisits are few and noisy,
so an institution's mean satisfaction is shrunk towards a prior mean (a Bayesian average, as if
``prior_weight`` revisits at the prior mean had been made before the real ones)::

    posterior = (prior_weight · prior_mean + count · mean) / (prior_weight + count)
    quality   = clamp((posterior − prior_mean) / QUALITY_SPAN, −1, 1)

With no revisit ``quality`` is exactly 0 (neutral); a handful of revisits moves it only a little;
many revisits let it approach the institution's own mean. ``prior_mean`` defaults to the pooled
mean of all the ratings given, so the network's typical institution is neutral and an unrated
newcomer is neither favoured nor punished; with no ratings at all it is the scale's midpoint.

The tickets package records satisfaction on revisits; it feeds routing by building a
:class:`QualityTable` (``QualityTable.from_ratings({institution_id: (mean, count)})``) and either
passing it to ``routing.match(..., quality=...)`` or registering a provider once at start-up with
:func:`use_provider`, which ``match`` then asks for the table whenever it is given a session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SATISFACTION_MIN = 1.0
SATISFACTION_MAX = 5.0
NEUTRAL_SATISFACTION = (SATISFACTION_MIN + SATISFACTION_MAX) / 2
# How many revisits the prior is worth: ten revisits weigh as much as the network's average.
DEFAULT_PRIOR_WEIGHT = 10.0
# A posterior this far above the prior counts as the best quality (+1), this far below as -1.
QUALITY_SPAN = 2.0


@dataclass(frozen=True)
class Rating:
    """One institution's revisit record: mean satisfaction on the 1..5 scale, and how many."""

    mean: float
    count: int


@dataclass(frozen=True)
class QualityTable:
    ratings: Mapping[int, Rating] = field(default_factory=dict)
    prior_mean: float = NEUTRAL_SATISFACTION
    prior_weight: float = DEFAULT_PRIOR_WEIGHT

    @classmethod
    def from_ratings(
        cls,
        ratings: Mapping[int, tuple[float, int]],
        *,
        prior_mean: float | None = None,
        prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    ) -> QualityTable:
        """Ratings as ``{institution_id: (mean satisfaction 1..5, number of revisits)}``."""
        cleaned: dict[int, Rating] = {}
        for institution_id, (mean, count) in ratings.items():
            if count < 0:
                raise ValueError(f"institution {institution_id}: negative revisit count")
            if count and not SATISFACTION_MIN <= mean <= SATISFACTION_MAX:
                raise ValueError(f"institution {institution_id}: mean {mean} outside 1..5")
            if count:
                cleaned[institution_id] = Rating(float(mean), int(count))
        if prior_mean is None:
            total = sum(r.count for r in cleaned.values())
            prior_mean = (
                sum(r.mean * r.count for r in cleaned.values()) / total
                if total
                else NEUTRAL_SATISFACTION
            )
        if prior_weight <= 0:
            raise ValueError("prior_weight must be positive")
        return cls(ratings=cleaned, prior_mean=prior_mean, prior_weight=prior_weight)

    def posterior(self, institution_id: int) -> float:
        """The shrunk mean satisfaction: the prior mean when there is no revisit."""
        rating = self.ratings.get(institution_id)
        if rating is None:
            return self.prior_mean
        weight = self.prior_weight + rating.count
        return (self.prior_weight * self.prior_mean + rating.count * rating.mean) / weight

    def quality(self, institution_id: int) -> float:
        """In [-1, 1]; 0 is neutral."""
        shift = (self.posterior(institution_id) - self.prior_mean) / QUALITY_SPAN
        return max(-1.0, min(1.0, shift))

    @cached_property
    def best_quality(self) -> float:
        """The highest quality any institution has here (0 when none is above neutral): the
        most a score can gain from quality, which bounds how far a search must look."""
        return max([0.0, *(self.quality(i) for i in self.ratings)])

    def revisits(self, institution_id: int) -> int:
        rating = self.ratings.get(institution_id)
        return rating.count if rating else 0


NEUTRAL = QualityTable()

# Optional: a function the tickets package registers that computes the table from a session.
QualityProvider = Callable[[Any], QualityTable]
_provider: QualityProvider | None = None


def use_provider(provider: QualityProvider | None) -> None:
    """Register (or, with None, remove) the function that measures quality from a session."""
    global _provider
    _provider = provider


def current_table(session: Any) -> QualityTable:
    return _provider(session) if _provider is not None else NEUTRAL
