"""Which of the eight service categories a caller needs, and whether they are complaining.

All knowledge lives in ``lexicon.yaml``; this module only matches and scores. The matcher is
built once, on first use, from three indexes:

- Chinese terms by their characters (substring look-ups from each position whose character
  starts some term);
- Chinese terms by sound: a trie over toneless pinyin syllables, folded the way recognisers
  and Chongqing speech blur them, walked with every reading of each character so homophones
  (容资 for 融资) and near-homophones are found without fuzzy search over the lexicon;
- English (and Latin-letter) terms by stemmed word sequences, with misspelt words corrected
  against the English vocabulary by edit distance (rapidfuzz), cached per word.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler

from routing.text import (
    CLAUSE_DELIMITERS,
    FillerStripper,
    Normalized,
    coarse,
    expand_braces,
    is_han,
    latin_tokens,
    normalize,
    readings,
    stem,
    term_pinyin_toned,
    toned_readings,
)

CATEGORY = "category"
COMPLAINT = "complaint"
SELF_TARGET = "self_target"
EXTERNAL_TARGET = "external_target"
CUE = "cue"
NEGATION = "negation"
NEUTRAL = "neutral"

_SOUND_END = "\0"


@dataclass(frozen=True, slots=True)
class Classification:
    category: str | None
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    evidence: tuple[str, ...]
    complaint: bool
    language: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "alternatives": [[key, round(score, 4)] for key, score in self.alternatives],
            "evidence": list(self.evidence),
            "complaint": self.complaint,
            "language": self.language,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """What a lexicon term means: its kind, the category or cue it belongs to, its weight."""

    kind: str
    key: str
    weight: float
    term: str


@dataclass(frozen=True, slots=True)
class Cue:
    requires: tuple[str, ...]
    add: Mapping[str, float]
    scale: Mapping[str, float]


@dataclass(slots=True)
class _Match:
    start: int
    end: int
    entries: Sequence[Entry]
    strength: float


@dataclass(frozen=True, slots=True)
class _Sound:
    term: str
    syllables: tuple[str, ...]
    toned: tuple[str, ...]
    entries: tuple[Entry, ...]


@dataclass
class Matcher:
    """The compiled lexicon. Build with ``Matcher.from_lexicon``; it is immutable after."""

    categories: tuple[str, ...]
    zh_index: dict[str, list[Entry]] = field(default_factory=dict)
    zh_lengths: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sound_trie: dict[str, Any] = field(default_factory=dict)
    en_index: dict[tuple[str, ...], list[Entry]] = field(default_factory=dict)
    en_content_index: dict[tuple[str, ...], list[Entry]] = field(default_factory=dict)
    en_max_len: int = 1
    en_vocab_by_len: dict[int, list[str]] = field(default_factory=dict)
    en_vocab: frozenset[str] = frozenset()
    stopwords: frozenset[str] = frozenset()
    known_en: frozenset[str] = frozenset()
    fillers: FillerStripper = field(default_factory=lambda: FillerStripper(()))
    cues: tuple[Cue, ...] = ()
    factors: dict[str, float] = field(default_factory=dict)
    complaint_threshold: float = 3.0
    self_target_bonus: float = 0.0
    saturation: float = 2.0
    threshold: float = 0.4
    _corrections: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_lexicon(cls, lexicon: Mapping[str, Any]) -> Matcher:
        tiers: dict[str, float] = {k: float(v) for k, v in lexicon["tiers"].items()}
        categories = tuple(lexicon["categories"])
        conf = lexicon["confidence"]
        matcher = cls(
            categories=categories,
            stopwords=frozenset(_strings(lexicon["stopwords_en"])),
            known_en=frozenset(
                [*_strings(lexicon["stopwords_en"]), *_strings(lexicon["generic_en"])]
            ),
            factors={k: float(v) for k, v in lexicon["match"].items()},
            complaint_threshold=float(lexicon["complaint"]["threshold"]),
            self_target_bonus=float(lexicon["complaint"].get("self_target_bonus", 0.0)),
            saturation=float(conf["saturation"]),
            threshold=float(conf["threshold"]),
        )
        fillers = lexicon["fillers"]
        matcher.fillers = FillerStripper([*_strings(fillers["zh"]), *_strings(fillers["en"])])

        for key, section in lexicon["categories"].items():
            for term, weight in _tiered(section, tiers):
                matcher._add(term, Entry(CATEGORY, key, weight, term))
        complaint = lexicon["complaint"]
        for term, weight in _tiered({"zh": complaint["zh"], "en": complaint["en"]}, tiers):
            matcher._add(term, Entry(COMPLAINT, "", weight, term))
        for kind, section_name in (
            (SELF_TARGET, "self_targets"),
            (EXTERNAL_TARGET, "external_targets"),
        ):
            for lang in ("zh", "en"):
                for term in _strings(complaint[section_name][lang]):
                    matcher._add(term, Entry(kind, "", 0.0, term))
        negation = lexicon["negation"]
        for term in [*_strings(negation["zh"]), *_strings(negation["en"])]:
            matcher._add(term, Entry(NEGATION, "", 0.0, term))
        for term in _strings(lexicon["neutral"]):
            matcher._add(term, Entry(NEUTRAL, "", 0.0, term))

        cues: list[Cue] = []
        for index, cue in enumerate(lexicon.get("cues") or []):
            terms = cue.get("terms") or {}
            for lang in ("zh", "en"):
                for term in _strings(terms.get(lang) or []):
                    matcher._add(term, Entry(CUE, str(index), 0.0, term))
            requires = tuple(str(r) for r in cue["requires"])
            unknown = set(requires) - {COMPLAINT, SELF_TARGET, EXTERNAL_TARGET, "terms"}
            add = {str(k): float(v) for k, v in (cue.get("add") or {}).items()}
            scale = {str(k): float(v) for k, v in (cue.get("scale") or {}).items()}
            if unknown or not set(add) | set(scale) <= set(categories):
                raise ValueError(f"lexicon cue {index} is malformed: {cue!r}")
            cues.append(Cue(requires, add, scale))
        matcher.cues = tuple(cues)
        matcher._finish()
        return matcher

    def _add(self, term: str, entry: Entry) -> None:
        for expanded in expand_braces(term):
            self._add_one(expanded, entry)

    def _add_one(self, term: str, entry: Entry) -> None:
        term = normalize(term).text
        if not term:
            return
        if term.isascii():
            words = tuple(stem(w) for w, _, _ in latin_tokens(term))
            if not words:
                return
            self.en_index.setdefault(words, []).append(entry)
            content = tuple(stem(w) for w, _, _ in latin_tokens(term) if w not in self.stopwords)
            if len(content) >= 2 and content != words:
                self.en_content_index.setdefault(content, []).append(entry)
            self.en_max_len = max(self.en_max_len, len(words))
            return
        self.zh_index.setdefault(term, []).append(entry)
        toned = term_pinyin_toned(term)
        if toned is not None and len(toned) >= 2:
            syllables = tuple(s.rstrip("12345") for s in toned)
            node = self.sound_trie
            for syllable in syllables:
                node = node.setdefault(coarse(syllable), {})
            node.setdefault(_SOUND_END, []).append(_Sound(term, syllables, toned, (entry,)))

    def _finish(self) -> None:
        # Spellings that normalise or stem alike ("employee", "employees") are one term.
        self.zh_index = {key: _dedupe(entries) for key, entries in self.zh_index.items()}
        self.en_index = {key: _dedupe(entries) for key, entries in self.en_index.items()}
        self.en_content_index = {
            key: _dedupe(entries) for key, entries in self.en_content_index.items()
        }
        lengths: dict[str, set[int]] = {}
        for term in self.zh_index:
            lengths.setdefault(term[0], set()).add(len(term))
        self.zh_lengths = {ch: tuple(sorted(ls, reverse=True)) for ch, ls in lengths.items()}
        vocab = {
            word
            for key in self.en_index
            for word in key
            if len(word) >= 4 and word.isalpha() and word not in self.known_en
        }
        self.en_vocab = frozenset(vocab)
        by_len: dict[int, list[str]] = {}
        for word in sorted(vocab):
            by_len.setdefault(len(word), []).append(word)
        self.en_vocab_by_len = by_len
        self._merge_sound_entries(self.sound_trie)

    def _merge_sound_entries(self, node: dict[str, Any]) -> None:
        for key, child in node.items():
            if key != _SOUND_END:
                self._merge_sound_entries(child)
                continue
            merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Entry]] = {}
            for sound in child:
                slot = (sound.term, sound.syllables, sound.toned)
                merged.setdefault(slot, []).extend(sound.entries)
            node[key] = [_Sound(t, s, tn, tuple(e)) for (t, s, tn), e in merged.items()]

    # --- matching -------------------------------------------------------------------------

    def find(self, norm: Normalized) -> list[_Match]:
        matches = self._find_zh(norm.text)
        matches.extend(self._find_sound(norm.text))
        matches.extend(self._find_en(norm.text))
        return _drop_contained(matches)

    def _find_zh(self, text: str) -> list[_Match]:
        out: list[_Match] = []
        index = self.zh_index
        n = len(text)
        for i, ch in enumerate(text):
            lengths = self.zh_lengths.get(ch)
            if lengths is None:
                continue
            for length in lengths:
                if i + length > n:
                    continue
                entries = index.get(text[i : i + length])
                if entries is not None:
                    out.append(_Match(i, i + length, entries, self.factors["exact"]))
        return out

    def _find_sound(self, text: str) -> list[_Match]:
        out: list[_Match] = []
        homophone = self.factors["homophone"]
        near = self.factors["near_homophone"]
        no_shared = self.factors["no_shared_char"]
        n = len(text)
        for i in range(n - 1):
            if not is_han(text[i]):
                continue
            frontier = [self.sound_trie]
            k = i
            while k < n and is_han(text[k]):
                syllables = _coarse_readings(text[k])
                step: list[dict[str, Any]] = []
                for node in frontier:
                    for syllable in syllables:
                        child = node.get(syllable)
                        if child is not None and child not in step:
                            step.append(child)
                if not step:
                    break
                frontier = step
                k += 1
                for node in frontier:
                    for sound in node.get(_SOUND_END, ()):
                        window = text[i:k]
                        if window == sound.term:
                            continue
                        shared = any(a == b for a, b in zip(window, sound.term, strict=True))
                        exact = all(
                            s in readings(c) for s, c in zip(sound.syllables, window, strict=True)
                        )
                        # Two syllables carry too little sound to trust loosely: 公司 is
                        # near 公示, 找人 differs from 招人 only by tone. A two-character
                        # term needs a homophone, tones included, sharing a character
                        # (容资 for 融资, 律诗 for 律师).
                        if len(window) < 3 and not (
                            shared and exact and _same_tones(window, sound.toned)
                        ):
                            continue
                        strength = homophone if exact else near
                        if not shared:
                            strength *= no_shared
                        out.append(_Match(i, k, sound.entries, strength))
        return out

    def _find_en(self, text: str) -> list[_Match]:
        tokens = latin_tokens(text)
        if not tokens:
            return []
        stems: list[str] = []
        corrected: list[bool] = []
        content: list[int] = []
        for position, (word, _, _) in enumerate(tokens):
            base = stem(word)
            fixed = False
            if word not in self.stopwords:
                content.append(position)
            if word not in self.known_en:
                if base not in self.en_vocab and (base,) not in self.en_index:
                    correction = self._correct(base)
                    if correction is not None:
                        base, fixed = correction, True
            stems.append(base)
            corrected.append(fixed)
        out: list[_Match] = []
        fuzzy = self.factors["english_fuzzy"]
        exact = self.factors["exact"]

        def scan(positions: Sequence[int], index: Mapping[tuple[str, ...], list[Entry]]) -> None:
            seq = [stems[p] for p in positions]
            for i in range(len(seq)):
                for length in range(min(self.en_max_len, len(seq) - i), 0, -1):
                    entries = index.get(tuple(seq[i : i + length]))
                    if entries is None:
                        continue
                    span = positions[i : i + length]
                    if length == 1:
                        # A common word alone only means itself ("you" as a target), never
                        # a lexicon word it happens to stem alike ("new" is not "news").
                        word = tokens[span[0]][0]
                        if word in self.known_en:
                            entries = [e for e in entries if e.term == word]
                            if not entries:
                                continue
                    strength = fuzzy if any(corrected[p] for p in span) else exact
                    out.append(_Match(tokens[span[0]][1], tokens[span[-1]][2], entries, strength))

        scan(range(len(tokens)), self.en_index)
        if self.en_content_index:
            scan(content, self.en_content_index)
        return out

    def _correct(self, word: str) -> str | None:
        """The lexicon word a misspelt word most likely meant, or None."""
        if word in self._corrections:
            return self._corrections[word]
        result: str | None = None
        if len(word) >= 5 and word.isalpha():
            limit = 1 if len(word) < 8 else 2
            candidates: list[str] = []
            for length in range(len(word) - limit, len(word) + limit + 1):
                candidates.extend(self.en_vocab_by_len.get(length, ()))
            found = process.extract(
                word, candidates, scorer=OSA.distance, score_cutoff=limit, limit=None
            )
            if found:
                # Ties on edit distance go to the word sharing the longer prefix: "lawer"
                # is a lawyer, not a laser.
                nearest = min(d for _, d, _ in found)
                result = max(
                    (str(c) for c, d, _ in found if d == nearest),
                    key=lambda c: JaroWinkler.similarity(word, c),
                )
        if len(self._corrections) < 100_000:
            self._corrections[word] = result
        return result

    # --- scoring --------------------------------------------------------------------------

    def classify(self, text: str) -> Classification:
        norm = normalize(text, self.fillers)
        matches = self.find(norm)
        self._apply_negation(norm.text, matches)

        best: dict[tuple[str, str, str], tuple[float, int, int]] = {}
        present: set[str] = set()
        cue_hits: set[str] = set()
        for match in matches:
            if match.strength <= 0.0:
                continue
            for entry in match.entries:
                if entry.kind in (CATEGORY, COMPLAINT):
                    value = entry.weight * match.strength
                    slot = (entry.kind, entry.key, entry.term)
                    if slot not in best or best[slot][0] < value:
                        best[slot] = (value, match.start, match.end)
                elif entry.kind == CUE:
                    cue_hits.add(entry.key)
                elif entry.kind in (SELF_TARGET, EXTERNAL_TARGET):
                    present.add(entry.kind)

        scores = dict.fromkeys(self.categories, 0.0)
        complaint_score = 0.0
        for (kind, key, _), (value, _, _) in best.items():
            if kind == CATEGORY:
                scores[key] += value
            else:
                complaint_score += value
        # A grumble aimed at the hotline or its referral ("你们 ... 一直没") needs less
        # evidence than one aimed at nobody in particular.
        if complaint_score > 0.0 and SELF_TARGET in present:
            complaint_score += self.self_target_bonus
        if complaint_score >= self.complaint_threshold:
            present.add(COMPLAINT)
        self._apply_cues(scores, present, cue_hits)

        ranked = sorted(self.categories, key=lambda c: -scores[c])
        top = scores[ranked[0]]
        alternatives = tuple(
            (key, self._score(scores[key], top if key != ranked[0] else scores[ranked[1]]))
            for key in ranked
        )
        confidence = alternatives[0][1]
        category = ranked[0] if top > 0.0 and confidence >= self.threshold else None
        is_complaint = COMPLAINT in present and (
            SELF_TARGET in present or EXTERNAL_TARGET not in present
        )
        evidence = self._evidence(norm, best, ranked[0] if top > 0.0 else None, is_complaint)
        return Classification(
            category=category,
            confidence=confidence,
            alternatives=alternatives,
            evidence=evidence,
            complaint=is_complaint,
            language=_language(norm.text),
        )

    def _score(self, score: float, rival: float) -> float:
        if score <= 0.0:
            return 0.0
        strength = 1.0 - math.exp(-score / self.saturation)
        return min(1.0, max(0.0, strength * score / (score + rival)))

    def _apply_negation(self, text: str, matches: list[_Match]) -> None:
        negations = [m for m in matches if any(e.kind == NEGATION for e in m.entries)]
        if not negations:
            return
        zh_scope = int(self.factors["negation_scope_zh"])
        en_scope = int(self.factors["negation_scope_en"])
        for negation in negations:
            end = negation.end
            words = 0
            limit = len(text)
            k = end
            while k < limit and text[k] not in CLAUSE_DELIMITERS:
                if is_han(text[k]):
                    if k - end >= zh_scope:
                        break
                elif text[k].isalnum() and (k == 0 or not text[k - 1].isalnum()):
                    if text[k].isascii():
                        word_end = k
                        while word_end < limit and text[word_end].isalnum():
                            word_end += 1
                        if text[k:word_end] not in self.stopwords:
                            words += 1
                            if words > en_scope:
                                break
                k += 1
            # A negation denies the next thing named (不要抵押的贷款 still wants a loan).
            scoped = [
                m
                for m in matches
                if m is not negation
                and end <= m.start < k
                and any(e.kind in (CATEGORY, COMPLAINT) for e in m.entries)
            ]
            if scoped:
                first = min(m.start for m in scoped)
                for match in scoped:
                    if match.start == first:
                        match.strength = 0.0

    def _apply_cues(self, scores: dict[str, float], present: set[str], hits: set[str]) -> None:
        fired = [
            cue
            for index, cue in enumerate(self.cues)
            if all((str(index) in hits) if r == "terms" else (r in present) for r in cue.requires)
        ]
        for cue in fired:
            for key, value in cue.add.items():
                scores[key] += value
        for cue in fired:
            for key, factor in cue.scale.items():
                scores[key] *= factor

    @staticmethod
    def _evidence(
        norm: Normalized,
        best: Mapping[tuple[str, str, str], tuple[float, int, int]],
        category: str | None,
        complaint: bool,
    ) -> tuple[str, ...]:
        chosen = [
            (value, start, end)
            for (kind, key, _), (value, start, end) in best.items()
            if (kind == CATEGORY and key == category) or (kind == COMPLAINT and complaint)
        ]
        chosen.sort(key=lambda item: (-item[0], item[1]))
        out: list[str] = []
        for _, start, end in chosen:
            phrase = norm.source_text(start, end).strip()
            if phrase and phrase not in out:
                out.append(phrase)
        return tuple(out)


def _dedupe(entries: Iterable[Entry]) -> list[Entry]:
    best: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        slot = (entry.kind, entry.key)
        if slot not in best or best[slot].weight < entry.weight:
            best[slot] = entry
    return list(best.values())


_CONTEXT_KINDS = frozenset({CUE, SELF_TARGET, EXTERNAL_TARGET})


def _drop_contained(matches: list[_Match]) -> list[_Match]:
    """Inside a strictly longer match, a match keeps only its context entries.

    The longer phrase decides the meaning (融资租赁 is not 融资, 投诉中心 is not a complaint),
    but a cue word inside it still tells what heads the request (the 纠纷 in 合同纠纷).
    """
    if len(matches) < 2:
        return matches
    matches.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[_Match] = []
    for match in matches:
        length = match.end - match.start
        if any(
            other.start <= match.start
            and match.end <= other.end
            and other.end - other.start > length
            for other in kept
        ):
            context = [e for e in match.entries if e.kind in _CONTEXT_KINDS]
            if not context:
                continue
            match = _Match(match.start, match.end, context, match.strength)
        kept.append(match)
    return kept


_coarse_cache: dict[str, tuple[str, ...]] = {}


def _coarse_readings(ch: str) -> tuple[str, ...]:
    cached = _coarse_cache.get(ch)
    if cached is None:
        cached = tuple(dict.fromkeys(coarse(r) for r in readings(ch)))
        _coarse_cache[ch] = cached
    return cached


def _same_tones(window: str, toned: Sequence[str]) -> bool:
    return len(toned) == len(window) and all(
        t in toned_readings(c) for t, c in zip(toned, window, strict=True)
    )


def _language(text: str) -> str:
    han = sum(1 for ch in text if is_han(ch))
    words = len(latin_tokens(text))
    return "en" if words > han else "zh"


def _strings(items: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"lexicon term must be a string, got {item!r}")
        out.append(item)
    return out


def _tiered(section: Mapping[str, Any], tiers: Mapping[str, float]) -> list[tuple[str, float]]:
    """(term, weight) pairs of a ``{zh|en: {tier: [term | {term: weight}]}}`` section."""
    out: list[tuple[str, float]] = []
    for lang in ("zh", "en"):
        for tier, items in (section.get(lang) or {}).items():
            if tier not in tiers:
                raise ValueError(f"unknown lexicon tier {tier!r}")
            for item in items or []:
                if isinstance(item, Mapping):
                    for term, weight in item.items():
                        out.append((str(term), float(weight)))
                elif isinstance(item, str):
                    out.append((item, tiers[tier]))
                else:
                    raise ValueError(f"lexicon term must be a string, got {item!r}")
    return out


def load_lexicon() -> dict[str, Any]:
    raw = resources.files("routing").joinpath("lexicon.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(raw)
    if not isinstance(data, dict):
        raise ValueError("routing/lexicon.yaml must hold a mapping")
    return data


_matcher: Matcher | None = None
_matcher_lock = threading.Lock()


def get_matcher() -> Matcher:
    """The process-wide matcher, built on first use."""
    global _matcher
    if _matcher is None:
        with _matcher_lock:
            if _matcher is None:
                _matcher = Matcher.from_lexicon(load_lexicon())
    return _matcher


def classify(text: str) -> Classification:
    """Understand one utterance or text message; see ``Classification``."""
    return get_matcher().classify(text if isinstance(text, str) else "")
