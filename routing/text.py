"""Text normalisation shared by the classifier and the place recogniser.

Every later step works on one canonical form: NFKC (full-width to half-width), lower case,
simplified characters, control and format characters gone, whitespace between Chinese
characters dropped (recognisers and SMS users put spaces in odd places), and filler words
removed. Each normalised character keeps the index of the original character it came from,
so a match can be reported as a span of the caller's own text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin
from pypinyin.pinyin_dict import pinyin_dict
from pypinyin.seg.simpleseg import seg as _pinyin_seg

# A real request is a sentence or an SMS; reading further only costs time, and noise of any
# length must be handled in bounded time.
MAX_INPUT_CHARS = 1000

# Characters after which a clause ends: negation and similar cues do not reach past them.
CLAUSE_DELIMITERS = frozenset(",.;:!?，。；：！？、\n")

_CACHE_LIMIT = 50_000
_char_cache: dict[str, str] = {}
_t2s = opencc.OpenCC("t2s")

_LATIN_TOKEN = re.compile(r"[a-z]+|[0-9]+")


def is_han(ch: str) -> bool:
    """A CJK unified ideograph (basic block and extension A), the script of every term."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _normalise_char(ch: str) -> str:
    cached = _char_cache.get(ch)
    if cached is not None:
        return cached
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp"):
        out = " "
    else:
        out = unicodedata.normalize("NFKC", ch).lower()
        if any(is_han(c) for c in out):
            out = _t2s.convert(out)
        out = "".join(" " if c.isspace() else c for c in out)
    if len(_char_cache) < _CACHE_LIMIT:
        _char_cache[ch] = out
    return out


@dataclass(frozen=True, slots=True)
class Normalized:
    """Canonical text plus, for each of its characters, the index of the source character."""

    text: str
    offsets: tuple[int, ...]
    source: str

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of the normalised text back onto the source text."""
        if start >= end:
            return (0, 0)
        return (self.offsets[start], self.offsets[end - 1] + 1)

    def source_text(self, start: int, end: int) -> str:
        s, e = self.source_span(start, end)
        return self.source[s:e]


class FillerStripper:
    """Removes filler words: a greedy left-to-right scan over a set of strings."""

    def __init__(self, fillers: Iterable[str]) -> None:
        self._by_first: dict[str, list[str]] = {}
        for filler in sorted({f for f in fillers if f}, key=len, reverse=True):
            self._by_first.setdefault(filler[0], []).append(filler)

    def keep_mask(self, text: str) -> list[bool]:
        keep = [True] * len(text)
        i = 0
        n = len(text)
        while i < n:
            candidates = self._by_first.get(text[i])
            if candidates:
                for filler in candidates:
                    if text.startswith(filler, i) and self._bounded(text, i, i + len(filler)):
                        for k in range(i, i + len(filler)):
                            keep[k] = False
                        i += len(filler) - 1
                        break
            i += 1
        return keep

    @staticmethod
    def _bounded(text: str, start: int, end: int) -> bool:
        # A Latin filler ("um", "uh") must be a whole word, never part of "umbrella".
        if not text[start].isascii():
            return True
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        return not (before.isascii() and before.isalnum()) and not (
            after.isascii() and after.isalnum()
        )


def normalize(text: str, fillers: FillerStripper | None = None) -> Normalized:
    """Canonical form of ``text`` (see the module docstring), capped at MAX_INPUT_CHARS."""
    source = text[:MAX_INPUT_CHARS] if isinstance(text, str) else ""
    chars: list[str] = []
    offsets: list[int] = []
    for index, ch in enumerate(source):
        for out in _normalise_char(ch):
            if out == " ":
                if not chars or chars[-1] == " ":
                    continue
            chars.append(out)
            offsets.append(index)
    # Drop spaces between two Chinese characters: "融 资" is one word to a listener.
    keep = [
        not (c == " " and 0 < i < len(chars) - 1 and is_han(chars[i - 1]) and is_han(chars[i + 1]))
        for i, c in enumerate(chars)
    ]
    if fillers is not None:
        filler_keep = fillers.keep_mask("".join(chars))
        keep = [a and b for a, b in zip(keep, filler_keep, strict=True)]
    kept_chars = [c for c, k in zip(chars, keep, strict=True) if k]
    kept_offsets = [o for o, k in zip(offsets, keep, strict=True) if k]
    while kept_chars and kept_chars[-1] == " ":
        kept_chars.pop()
        kept_offsets.pop()
    while kept_chars and kept_chars[0] == " ":
        kept_chars.pop(0)
        kept_offsets.pop(0)
    return Normalized("".join(kept_chars), tuple(kept_offsets), source)


def latin_tokens(text: str) -> list[tuple[str, int, int]]:
    """Runs of Latin letters or of digits in normalised text, with their spans."""
    return [(m.group(), m.start(), m.end()) for m in _LATIN_TOKEN.finditer(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, symmetric English stemmer: plurals, -ing, -ed and a final -e.

    Applied alike to lexicon terms and to callers' words, so it only has to be consistent,
    not linguistically right: "financing", "finance" and "finances" all become "financ".
    """
    w = word
    if len(w) > 4 and w.endswith(("ies", "ied")):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


@lru_cache(maxsize=65536)
def readings(ch: str) -> tuple[str, ...]:
    """Every toneless pinyin reading of one character (heteronyms give several)."""
    raw = pinyin_dict.get(ord(ch))
    if not raw:
        return ()
    out: list[str] = []
    for reading in raw.split(","):
        syllable = _toneless(reading)
        if syllable and syllable not in out:
            out.append(syllable)
    return tuple(out)


_TONE_MARKS = {"\u0304": "1", "\u0301": "2", "\u030c": "3", "\u0300": "4"}


@lru_cache(maxsize=65536)
def toned_readings(ch: str) -> tuple[str, ...]:
    """Every reading of one character with its tone as a digit (5 = neutral): zhao1."""
    raw = pinyin_dict.get(ord(ch))
    if not raw:
        return ()
    out: list[str] = []
    for reading in raw.split(","):
        decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
        tone = next((_TONE_MARKS[c] for c in decomposed if c in _TONE_MARKS), "5")
        syllable = "".join(c for c in decomposed if c.isascii() and c.isalpha()).lower()
        if syllable and syllable + tone not in out:
            out.append(syllable + tone)
    return tuple(out)


@lru_cache(maxsize=16384)
def term_pinyin_toned(term: str) -> tuple[str, ...] | None:
    """Pinyin of an all-Chinese term in context, with tone digits (lv4 shi1), else None.

    pypinyin reads a text word by word (its own segmentation) and each word on its own, so
    the term is segmented once and each word's reading is cached: brace-expanded terms share
    most of their words, and building the matcher mostly costs these readings.
    """
    if not term or not all(is_han(c) for c in term):
        return None
    syllables: list[str] = []
    for word in _pinyin_seg(term):
        syllables.extend(_word_pinyin_toned(word))
    if len(syllables) != len(term):
        return None
    return tuple(syllables)


@lru_cache(maxsize=16384)
def _word_pinyin_toned(word: str) -> tuple[str, ...]:
    syllables = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
    return tuple(s.replace("ü", "v") for s in syllables)


_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(term: str) -> list[str]:
    """Expand alternations: "{开|办}{个|}店" gives 开个店, 开店, 办个店, 办店."""
    match = _BRACES.search(term)
    if match is None:
        return [term]
    out: list[str] = []
    for option in match.group(1).split("|"):
        out.extend(expand_braces(term[: match.start()] + option + term[match.end() :]))
    return out


def _toneless(reading: str) -> str:
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
    return "".join(c for c in decomposed if c.isascii() and c.isalpha()).lower()


def term_pinyin(term: str) -> tuple[str, ...] | None:
    """Toneless pinyin of an all-Chinese term in context (so 银行 is yin hang), else None."""
    if not term or not all(is_han(c) for c in term):
        return None
    syllables = lazy_pinyin(term, style=Style.NORMAL, errors="ignore")
    if len(syllables) != len(term):
        return None
    return tuple(s.replace("ü", "v") for s in syllables)


@lru_cache(maxsize=4096)
def coarse(syllable: str) -> str:
    """Fold the distinctions Chongqing speech and recognisers blur.

    South-western Mandarin merges zh/ch/sh with z/c/s, n with l, -eng/-ing with -en/-in and
    says fu for hu; a near-homophone is a word whose syllables agree after this folding.
    """
    s = syllable
    for retroflex in ("zh", "ch", "sh"):
        if s.startswith(retroflex):
            s = s[0] + s[2:]
            break
    if s.startswith("n"):
        s = "l" + s[1:]
    if s == "hu":
        s = "fu"
    if len(s) > 2 and s.endswith(("eng", "ing")):
        s = s[:-1]
    return s
