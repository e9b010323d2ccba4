from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, create_engine

from routing.quality import CachedProvider, QualityTable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_table_is_measured_again_only_once_it_is_too_old(tmp_path: Path) -> None:
    clock = Clock()
    measured: list[str] = []

    def measure(session: Session) -> QualityTable:
        measured.append(str(session.get_bind().engine.url))
        return QualityTable.from_ratings({1: (4.0, len(measured))})

    provider = CachedProvider(measure, max_age=60, clock=clock)
    first = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    second = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with Session(first) as a, Session(second) as b:
        table = provider(a)
        clock.now += 59
        assert provider(a) is table  # still fresh: not measured again
        assert provider(b) is not table  # another database has its own table
        assert len(measured) == 2
        clock.now += 1
        refreshed = provider(a)
        assert refreshed is not table and refreshed.revisits(1) == 3
        provider.clear()
        assert provider(b).revisits(1) == 4
    assert measured == [str(first.url), str(second.url), str(first.url), str(second.url)]
