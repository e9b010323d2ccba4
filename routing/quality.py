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

import threading
import time
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


class CachedProvider:
    """A provider that measures at most once per ``max_age`` per database.

    Measuring aggregates every answered revisit of the service's history, and ``match`` asks
    for the table on every routed case: per text, a scan that grows without end. Quality moves
    slowly (it is an average shrunk towards the network's), so a table a few minutes old routes
    the same; each process refreshes its own."""

    def __init__(
        self,
        measure: QualityProvider,
        *,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._measure = measure
        self._max_age = max_age
        self._clock = clock
        self._tables: dict[str, tuple[float, QualityTable]] = {}
        self._lock = threading.Lock()

    def __call__(self, session: Any) -> QualityTable:
        database = session.get_bind().engine.url.render_as_string(hide_password=False)
        now = self._clock()
        with self._lock:
            cached = self._tables.get(database)
        if cached is not None and now - cached[0] < self._max_age:
            return cached[1]
        table = self._measure(session)
        with self._lock:
            self._tables[database] = (now, table)
        return table

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()


def forget_measured() -> None:
    """Drop cached tables (after a database was emptied or restored), so the next case routed
    measures again."""
    if isinstance(_provider, CachedProvider):
        _provider.clear()
