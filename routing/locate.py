"""Which district, county or industrial cluster a caller's text names.

The gazetteer is built from the catalogue (``kb/data/districts.csv`` and ``clusters.csv``, or
rows a caller passes in) and recognises each place by:

- its Chinese names: full (渝北区), short (渝北), cluster aliases (西永微电园);
- romanised forms: pinyin run together or spaced (yubei, "sha ping ba"), the English name
  (Yubei District), with or without district/county/qu/xian;
- sound: homophones and near-homophones of the Chinese names (鱼北区, 沙平坝), through a
  trie over toneless pinyin as in the classifier;
- spelling: a Chinese window whose pinyin is within a small edit distance of a name of
  three or more characters (九龙波), and romanised names of seven or more letters misspelt
  by one or two letters (shapinba), both with rapidfuzz.

Short names are common words too: 长寿 is longevity, 荣昌 hides in 繁荣昌盛 and 渝中 in
川渝中小企业. So exact full names score highest, two-character short names and aliases
lose to any overlapping common word in ``_BLOCKERS``, and a two-character name heard only
by sound counts only after a location word (在, 位于, ...) or before a place suffix.
Romanised names match whole words only, so no pinyin is found inside an English word.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from routing.text import (
    Normalized,
    coarse,
    is_han,
    latin_tokens,
    normalize,
    readings,
    term_pinyin,
)

DISTRICT = "district"
CLUSTER = "cluster"

# Scores by how a place was named; the best-scoring reading of the text wins.
SCORE_FULL = 1.0
SCORE_ALIAS = 0.95
SCORE_SHORT = 0.9
SCORE_SHORT_ALIAS = 0.75
SCORE_ROMAN_CORE = 0.85
SCORE_ROMAN_SHORT = 0.6
SCORE_HOMOPHONE = 0.85
SCORE_NEAR_HOMOPHONE = 0.7
SCORE_SOUND_SHORT = 0.6
SCORE_FUZZY_ROMAN = 0.7
SCORE_FUZZY_SOUND = 0.55
# A romanised name shorter than this is only trusted with its suffix or exact spelling;
# fuzzy spelling needs at least _FUZZY_ROMAN_MIN letters ("fueling" is not fuling).
_ROMAN_SHORT = 5
_FUZZY_ROMAN_MIN = 7

_ROMAN_SUFFIXES = ("district", "county", "qu", "xian", "autonomous")
_ZH_SUFFIXES = (
    "区",
    "县",
    "园区",
    "工业园",
    "开发区",
    "新区",
    "片区",
    "一带",
    "附近",
    "这边",
    "那边",
)
_LOCATION_WORDS = ("在", "到", "去", "住", "位于", "来自", "地址", "搬到", "落户", "属于")
_BLOCKERS = (
    "长江北",
    "江北岸",
    "北岸",
    "南岸边",
    "河南岸",
    "岸边",
    "湖南",
    "河南",
    "昌盛",
    "长寿面",
    "健康长寿",
    "长寿命",
    "寿命",
    "中小",
    "中心",
    "中间",
    "足够",
    "足球",
    "石柱子",
    "进城口",
    "出城口",
    "两江水",
    "空港口",
    "茶园里",
    "建桥梁",
    "大渡口岸",
    "秀山水",
)


@dataclass(frozen=True, slots=True)
class Place:
    kind: str
    code: str
    name_zh: str
    name_en: str
    district_code: str
    span: tuple[int, int]
    matched: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "district_code": self.district_code,
            "span": [self.span[0], self.span[1]],
            "matched": self.matched,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class _Record:
    kind: str
    code: str
    name_zh: str
    name_en: str
    district_code: str


@dataclass(frozen=True, slots=True)
class _Form:
    """One way of writing a place, and the score an exact hit on it earns."""

    record: _Record
    score: float
    short: bool = False  # two characters: often an ordinary word too, so blockers apply
    needs_context: bool = False  # only a place after 在/位于 or before 园区/区 (茶园, 空港)


@dataclass(slots=True)
class _Hit:
    form: _Form
    start: int
    end: int
    score: float


class Gazetteer:
    """Place names from catalogue rows, indexed for ``locate``."""

    def __init__(self, records: Iterable[tuple[_Record, list[str], list[str]]]) -> None:
        self._zh: dict[str, list[_Form]] = {}
        self._zh_lengths: dict[str, tuple[int, ...]] = {}
        self._sound: dict[str, Any] = {}
        self._roman: dict[tuple[str, ...], list[_Form]] = {}
        self._roman_max = 1
        self._roman_fuzzy: dict[str, list[_Form]] = {}
        self._sound_fuzzy: dict[int, dict[str, list[_Form]]] = {}
        for record, zh_forms, en_forms in records:
            self._index(record, zh_forms, en_forms)
        lengths: dict[str, set[int]] = {}
        for form in self._zh:
            lengths.setdefault(form[0], set()).add(len(form))
        self._zh_lengths = {c: tuple(sorted(ls, reverse=True)) for c, ls in lengths.items()}
        self._roman_fuzzy_keys = list(self._roman_fuzzy)
        self._sound_fuzzy_keys = {n: list(d) for n, d in self._sound_fuzzy.items()}

    # --- building -----------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls,
        districts: Iterable[Mapping[str, Any]],
        clusters: Iterable[Mapping[str, Any]] = (),
    ) -> Gazetteer:
        """Build from catalogue rows (dicts with the CSV columns, or ORM rows' dicts)."""
        records: list[tuple[_Record, list[str], list[str]]] = []
        for row in districts:
            code = str(row["code"])
            record = _Record(DISTRICT, code, str(row["name_zh"]), str(row["name_en"]), code)
            short = str(row.get("short_zh") or "")
            records.append((record, [record.name_zh, short], [record.name_en]))
        for row in clusters:
            record = _Record(
                CLUSTER,
                str(row["code"]),
                str(row["name_zh"]),
                str(row["name_en"]),
                str(row.get("district_code") or ""),
            )
            zh = [record.name_zh, *_split_aliases(row.get("aliases_zh"))]
            en = [record.name_en, *_split_aliases(row.get("aliases_en"))]
            records.append((record, zh, en))
        return cls(records)

    @classmethod
    def from_catalogue(cls) -> Gazetteer:
        """Build from the catalogue files shipped in the ``kb`` package."""
        data = resources.files("kb") / "data"
        districts = _read_csv(data.joinpath("districts.csv").read_text(encoding="utf-8"))
        clusters = _read_csv(data.joinpath("clusters.csv").read_text(encoding="utf-8"))
        return cls.from_rows(districts, clusters)

    def _index(self, record: _Record, zh_forms: list[str], en_forms: list[str]) -> None:
        full = normalize(record.name_zh).text
        romanised: set[str] = set()
        for raw in zh_forms:
            name = normalize(raw).text
            if len(name) < 2 or not all(is_han(c) for c in name):
                continue
            short = len(name) <= 2
            if name == full:
                score = SCORE_FULL
            elif record.kind == DISTRICT:
                score = SCORE_SHORT
            else:
                score = SCORE_SHORT_ALIAS if short else SCORE_ALIAS
            form = _Form(record, score, short, needs_context=short and record.kind == CLUSTER)
            self._add(self._zh, name, form)
            self._index_sound(name, form)
            spoken = term_pinyin(name)
            if spoken is not None:
                roman_score = min(score, SCORE_ROMAN_CORE) if short else score
                self._index_roman(spoken, _Form(record, roman_score))
                romanised.add("".join(spoken))
        for raw in en_forms:
            words = tuple(w for w, _, _ in latin_tokens(normalize(raw).text))
            if not words:
                continue
            score = SCORE_FULL if raw == record.name_en else SCORE_ALIAS
            self._index_roman(words, _Form(record, score))
            if record.kind != DISTRICT:
                continue
            # "Yubei District" is also "Yubei", "yubei qu"; "Zhong County" is not "zhong".
            core = tuple(w for w in words if w not in _ROMAN_SUFFIXES and w not in _ETHNIC)
            if not core or core == words:
                continue
            joined = "".join(core)
            if joined in romanised or len(joined) >= 6:
                score = SCORE_ROMAN_CORE if len(joined) >= _ROMAN_SHORT else SCORE_ROMAN_SHORT
                self._index_roman(core, _Form(record, score))
            for suffix in _ROMAN_SUFFIXES[:4]:
                self._index_roman((*core, suffix), _Form(record, SCORE_FULL))

    def _index_roman(self, words: tuple[str, ...], form: _Form) -> None:
        variants = {words, ("".join(words),)}
        for variant in variants:
            self._add(self._roman, variant, form)
            self._roman_max = max(self._roman_max, len(variant))
        joined = "".join(words)
        if len(joined) >= _FUZZY_ROMAN_MIN:
            self._add(self._roman_fuzzy, joined, form)

    def _index_sound(self, name: str, form: _Form) -> None:
        options = _syllables(name)
        for syllables in options:
            node = self._sound
            for syllable in syllables:
                node = node.setdefault(coarse(syllable), {})
            forms = node.setdefault("", [])
            if (name, form) not in forms:
                forms.append((name, form))
        if len(name) >= 3:
            bucket = self._sound_fuzzy.setdefault(len(name), {})
            self._add(bucket, "".join(options[0]), form)

    @staticmethod
    def _add(index: dict[Any, list[_Form]], key: Any, form: _Form) -> None:
        forms = index.setdefault(key, [])
        if all(f.record != form.record or f.score < form.score for f in forms):
            forms[:] = [f for f in forms if f.record != form.record] + [form]

    # --- matching -----------------------------------------------------------------------

    def locate(self, text: str) -> Place | None:
        norm = normalize(text if isinstance(text, str) else "")
        hits = self._exact_zh(norm.text)
        hits.extend(self._sound_zh(norm.text))
        hits.extend(self._roman_hits(norm.text))
        hits = [h for h in hits if not self._blocked(norm.text, h)]
        if not hits:
            return None
        best = max(hits, key=lambda h: (h.score, h.end - h.start, -h.start))
        return _place(norm, best)

    def _exact_zh(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        n = len(text)
        for i, ch in enumerate(text):
            for length in self._zh_lengths.get(ch, ()):
                if i + length <= n:
                    for form in self._zh.get(text[i : i + length], ()):
                        hits.append(_Hit(form, i, i + length, form.score))
        return hits

    def _sound_zh(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        n = len(text)
        for i in range(n - 1):
            if not is_han(text[i]):
                continue
            frontier = [self._sound]
            k = i
            while k < n and is_han(text[k]):
                step: list[dict[str, Any]] = []
                for node in frontier:
                    for syllable in {coarse(r) for r in readings(text[k])}:
                        child = node.get(syllable)
                        if child is not None and child not in step:
                            step.append(child)
                if not step:
                    break
                frontier = step
                k += 1
                window = text[i:k]
                for node in frontier:
                    for name, form in node.get("", ()):
                        if window != name:
                            hits.extend(self._sound_hit(text, i, k, name, form))
        hits.extend(self._fuzzy_sound(text))
        return hits

    def _sound_hit(self, text: str, i: int, k: int, name: str, form: _Form) -> list[_Hit]:
        window = text[i:k]
        if not any(a == b for a, b in zip(window, name, strict=True)):
            return []
        exact = any(
            all(s in readings(c) for s, c in zip(option, window, strict=True))
            for option in _syllables(name)
        )
        if form.short:
            if not (exact and _in_place_context(text, i, k)):
                return []
            score = min(SCORE_SOUND_SHORT, form.score - 0.05)
        else:
            score = SCORE_HOMOPHONE if exact else SCORE_NEAR_HOMOPHONE
            score = min(score, form.score - 0.05)
        return [_Hit(form, i, k, score)]

    def _fuzzy_sound(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        n = len(text)
        for length, keys in self._sound_fuzzy_keys.items():
            limit = 1 if length <= 4 else 2
            bucket = self._sound_fuzzy[length]
            for i in range(n - length + 1):
                window = text[i : i + length]
                if not all(is_han(c) for c in window):
                    continue
                spoken = "".join((readings(c) or ("?",))[0] for c in window)
                found = process.extractOne(
                    spoken, keys, scorer=Levenshtein.distance, score_cutoff=limit
                )
                if found is None:
                    continue
                for form in bucket[str(found[0])]:
                    name = normalize(form.record.name_zh).text
                    if any(c in name for c in window):
                        hits.append(_Hit(form, i, i + length, SCORE_FUZZY_SOUND))
        return hits

    def _roman_hits(self, text: str) -> list[_Hit]:
        tokens = latin_tokens(text)
        hits: list[_Hit] = []
        words = [w for w, _, _ in tokens]
        for i in range(len(words)):
            for length in range(min(self._roman_max, len(words) - i), 0, -1):
                for form in self._roman.get(tuple(words[i : i + length]), ()):
                    hits.append(_Hit(form, tokens[i][1], tokens[i + length - 1][2], form.score))
            word = words[i]
            if len(word) >= _FUZZY_ROMAN_MIN and (word,) not in self._roman:
                limit = 1 if len(word) < 10 else 2
                found = process.extractOne(
                    word, self._roman_fuzzy_keys, scorer=OSA.distance, score_cutoff=limit
                )
                if found is not None:
                    for form in self._roman_fuzzy[str(found[0])]:
                        hits.append(_Hit(form, tokens[i][1], tokens[i][2], SCORE_FUZZY_ROMAN))
        return hits

    @staticmethod
    def _blocked(text: str, hit: _Hit) -> bool:
        """A name other than an exact full one, inside or across an ordinary word, is no place.

        繁荣昌盛 holds 荣昌, 长江北岸 holds 江北, and 大足球 sounds like 大足区.
        """
        if hit.score >= SCORE_FULL or not is_han(text[hit.start]):
            return False
        if hit.form.needs_context and not _in_place_context(text, hit.start, hit.end):
            return True
        for blocker in _BLOCKERS:
            start = text.find(blocker, max(0, hit.start - len(blocker) + 1))
            while start != -1 and start < hit.end:
                if hit.start < start + len(blocker):
                    return True
                start = text.find(blocker, start + 1)
        return False


_ETHNIC = frozenset({"tujia", "miao", "and", "new", "area", "zone", "park", "industrial"})


def _in_place_context(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 2) : start]
    after = text[end : end + 3]
    return any(before.endswith(w) for w in _LOCATION_WORDS) or any(
        after.startswith(s) for s in _ZH_SUFFIXES
    )


def _syllables(name: str) -> list[tuple[str, ...]]:
    """Every reading of a Chinese name (丰都 may be read feng du or feng dou), capped."""
    options = [readings(c) or ("?",) for c in name]
    combos = itertools.islice(itertools.product(*options), 16)
    return [tuple(c) for c in combos]


def _split_aliases(value: Any) -> list[str]:
    if not value:
        return []
    return [a.strip() for a in str(value).split("|") if a.strip()]


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _place(norm: Normalized, hit: _Hit) -> Place:
    record = hit.form.record
    return Place(
        kind=record.kind,
        code=record.code,
        name_zh=record.name_zh,
        name_en=record.name_en,
        district_code=record.district_code,
        span=norm.source_span(hit.start, hit.end),
        matched=norm.source_text(hit.start, hit.end),
        score=max(0.0, min(1.0, hit.score)),
    )


_default: Gazetteer | None = None
_default_lock = threading.Lock()


def default_gazetteer() -> Gazetteer:
    """The gazetteer of the shipped catalogue, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Gazetteer.from_catalogue()
    return _default


def locate(text: str, gazetteer: Gazetteer | None = None) -> Place | None:
    """The district or cluster ``text`` names, or None; see ``Place``."""
    return (gazetteer or default_gazetteer()).locate(text)
