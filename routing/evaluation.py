"""Scoring the classifier on a labelled file: accuracy, per-category precision and recall, the
confusion matrix and every miss. Rows are ``category<TAB>text`` after a header line; a third
column, when present, is ignored (some sets carry a complaint flag there)."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.classify import classify

CATEGORY_KEYS = (
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
)
UNSURE = "(unsure)"


class EvaluationFileError(ValueError):
    """The labelled file is malformed; the message names the line."""


@dataclass
class Evaluation:
    n: int = 0
    correct: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def unsure(self) -> int:
        return sum(count for (_, got), count in self.confusion.items() if got == UNSURE)

    def precision(self, key: str) -> float | None:
        predicted = sum(c for (_, got), c in self.confusion.items() if got == key)
        return self.confusion[(key, key)] / predicted if predicted else None

    def recall(self, key: str) -> float | None:
        actual = sum(c for (want, _), c in self.confusion.items() if want == key)
        return self.confusion[(key, key)] / actual if actual else None

    def summary(self) -> dict[str, Any]:
        return {"accuracy": round(self.accuracy, 4), "n": self.n, "misses": self.misses}


def read_labelled(path: Path) -> list[tuple[int, str, str]]:
    rows: list[tuple[int, str, str]] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise EvaluationFileError(f"{path.name}:1: empty file, a header line is needed")
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise EvaluationFileError(f"{path.name}:{line}: want category<TAB>text")
            category = row[0].strip()
            if category not in CATEGORY_KEYS:
                # Rows labelled otherwise (e.g. pure complaints) are not category rows.
                continue
            rows.append((line, category, row[1]))
    return rows


def evaluate(path: Path) -> Evaluation:
    result = Evaluation()
    for line, want, text in read_labelled(path):
        found = classify(text)
        got = found.category or UNSURE
        result.n += 1
        result.confusion[(want, got)] += 1
        if got == want:
            result.correct += 1
        else:
            result.misses.append(
                {
                    "line": line,
                    "text": text,
                    "expected": want,
                    "got": found.category,
                    "confidence": round(found.confidence, 4),
                }
            )
    return result


def report(result: Evaluation) -> str:
    """The evaluation as text for a terminal."""
    lines = [
        f"accuracy {result.accuracy:.4f} ({result.correct}/{result.n}), unsure {result.unsure}"
    ]
    lines.append(f"{'category':<12} {'precision':>9} {'recall':>7}")
    for key in CATEGORY_KEYS:
        p, r = result.precision(key), result.recall(key)
        lines.append(
            f"{key:<12} {'-' if p is None else f'{p:.3f}':>9} {'-' if r is None else f'{r:.3f}':>7}"
        )
    columns = [*CATEGORY_KEYS, UNSURE]
    lines.append("confusion (rows expected, columns got):")
    lines.append(" " * 12 + " ".join(f"{c[:5]:>5}" for c in columns))
    for want in CATEGORY_KEYS:
        counts = " ".join(f"{result.confusion[(want, got)]:>5}" for got in columns)
        lines.append(f"{want:<12}{counts}")
    lines.append(f"misses ({len(result.misses)}):")
    for miss in result.misses:
        lines.append(
            f"  line {miss['line']}: expected {miss['expected']}, got {miss['got']} "
            f"({miss['confidence']}): {miss['text']}"
        )
    return "\n".join(lines)
