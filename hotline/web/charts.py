"""Server-side SVG charts (no script, no CDN): horizontal bars, laid out here, drawn by the
``_bars.svg`` template (labels autoescaped like everything else)."""

from __future__ import annotations

from dataclasses import dataclass

ROW = 22
LABEL_WIDTH = 150
BAR_WIDTH = 360
VALUE_WIDTH = 60


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    y: int
    width: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    height: int
    width: int = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    label_width: int = LABEL_WIDTH


def fit(label: str, width: float = LABEL_WIDTH - 10) -> str:
    """The label cut (with "…") to what fits the label column: a CJK character is about 12px
    wide at the chart's font size, others about 7px."""
    used = 0.0
    for index, char in enumerate(label):
        used += 12.0 if ord(char) > 0x2E80 else 7.0
        if used > width:
            return label[: max(index - 1, 1)] + "…"
    return label


def bars(
    title: str, items: list[tuple[str, float | None]], *, percent: bool = False, top: int = 12
) -> BarChart:
    """Largest first; a missing value (a rate with no denominator) shows as "—" and no bar."""
    ordered = sorted(items, key=lambda item: -(item[1] or 0.0))[:top]
    scale = 1.0 if percent else max([v or 0.0 for _, v in ordered] + [1.0])
    laid = []
    for index, (label, value) in enumerate(ordered):
        if value is None:
            text = "—"
        elif percent:
            text = f"{value * 100:.0f}%"
        else:
            text = f"{value:g}"
        laid.append(
            Bar(
                label=fit(label),
                value=value or 0.0,
                text=text,
                y=index * ROW,
                width=round(BAR_WIDTH * (value or 0.0) / scale, 1),
            )
        )
    return BarChart(title=title, bars=laid, height=max(len(laid), 1) * ROW)
