"""Speed of understanding a caller: one line per figure, "name value".

Figures: the import and matcher start-up costs, then the median (and 99th percentile) time
per ``classify`` call over the dev set and over 10,000 utterances generated
deterministically from the lexicon, fillers and noise, and the same for ``locate``.

Run from the repository root: ``python benchmarks/bench_classify.py``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

started = time.perf_counter()
from routing.classify import Matcher, classify, get_matcher, load_lexicon  # noqa: E402
from routing.locate import default_gazetteer, locate  # noqa: E402

IMPORT_MS = (time.perf_counter() - started) * 1000

DEV_SET = REPO.parent / "shared" / "data" / "classify_dev.tsv"
GENERATED = 10_000
SEED = 20240601

ZH_FRAMES = ("我想{}", "请问{}怎么办", "{}", "想了解{}", "有没有{}", "{}找谁", "我们公司{}")
EN_FRAMES = ("i need {}", "{}", "looking for {}", "how do we get {}", "help with {} please")
NOISE = "😀🙏，。！？ \u200b#*~123"


def _terms(section: dict[str, dict[str, list[object]]], lang: str) -> list[str]:
    """A section's terms, whether written plain or as ``{term: weight}``."""
    out: list[str] = []
    for items in (section.get(lang) or {}).values():
        for item in items:
            if isinstance(item, dict):
                out.extend(str(term) for term in item)
            else:
                out.append(str(item))
    return out


def generate(count: int, seed: int = SEED) -> list[str]:
    """Utterances built from lexicon terms, fillers and noise; the same on every run."""
    lexicon = load_lexicon()
    rng = random.Random(seed)
    zh_fillers = [str(f) for f in lexicon["fillers"]["zh"]]
    en_fillers = [str(f) for f in lexicon["fillers"]["en"]]
    sections = list(lexicon["categories"].values())
    out: list[str] = []
    for _ in range(count):
        section = rng.choice(sections)
        if rng.random() < 0.7:
            terms = _terms(section, "zh")
            body = "".join(rng.choice(terms) for _ in range(rng.randint(1, 2)))
            if rng.random() < 0.5:
                body = rng.choice(zh_fillers) + body
            text = rng.choice(ZH_FRAMES).format(body)
        else:
            terms = _terms(section, "en")
            body = " ".join(rng.choice(terms) for _ in range(rng.randint(1, 2)))
            if rng.random() < 0.5:
                body = rng.choice(en_fillers) + " " + body
            text = rng.choice(EN_FRAMES).format(body)
        if rng.random() < 0.2:
            text += "".join(rng.choice(NOISE) for _ in range(rng.randint(1, 8)))
        out.append(text)
    return out


def per_call_ms(function: Callable[[str], object], texts: Sequence[str]) -> list[float]:
    timings: list[float] = []
    clock = time.perf_counter
    for text in texts:
        start = clock()
        function(text)
        timings.append((clock() - start) * 1000)
    return timings


def report(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    print(f"{name}_median_ms {statistics.median(ordered):.4f}")
    print(f"{name}_p99_ms {ordered[int(len(ordered) * 0.99) - 1]:.4f}")


def main() -> None:
    print(f"import_ms {IMPORT_MS:.1f}")
    start = time.perf_counter()
    Matcher.from_lexicon(load_lexicon())
    print(f"matcher_build_ms {(time.perf_counter() - start) * 1000:.1f}")
    start = time.perf_counter()
    get_matcher()
    classify("预热")
    print(f"classify_first_call_ms {(time.perf_counter() - start) * 1000:.1f}")
    start = time.perf_counter()
    default_gazetteer()
    print(f"gazetteer_build_ms {(time.perf_counter() - start) * 1000:.1f}")

    dev = [
        line.split("\t")[1]
        for line in DEV_SET.read_text(encoding="utf-8").splitlines()[1:]
        if line.strip()
    ]
    generated = generate(GENERATED)
    # A first pass warms the per-character and spelling caches, as a running service has.
    per_call_ms(classify, dev)
    report("classify_dev", per_call_ms(classify, dev * 5))
    report("classify_generated", per_call_ms(classify, generated))
    noise = ("😀\x07#@%\u200b¥\ufeff噪声" * 1200)[:10_000]
    report("classify_noise_10000_chars", per_call_ms(classify, [noise] * 20))
    report("locate_dev", per_call_ms(locate, dev * 5))
    report("locate_generated", per_call_ms(locate, generated[:2000]))


if __name__ == "__main__":
    main()
