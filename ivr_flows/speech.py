"""What callers say and key, turned into what the flows need; and what the hotline says back.

- speech hints for ``<Gather>`` from routing's lexicon (data, read as a file: no routing
  internals), so the recogniser favours the words the classifier knows;
- ticket numbers read out character by character, and heard back from keys or speech;
- yes/no and small numbers in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from tickets.numbers import check_letter, find_in_text, normalise

# Twilio accepts at most 500 hints per <Gather>; leave room for a flow's own words.
MAX_HINTS = 450

_ZH_DIGITS = {
    "零": "0",
    "〇": "0",
    "洞": "0",
    "一": "1",
    "幺": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "拐": "7",
    "八": "8",
    "九": "9",
    "勾": "9",
}
_EN_DIGITS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# Letters on a phone keypad, for check letters keyed as digits (K is on 5).
KEYPAD = {
    "2": "ABC",
    "3": "DEF",
    "4": "GHI",
    "5": "JKL",
    "6": "MNO",
    "7": "PQRS",
    "8": "TUV",
    "9": "WXYZ",
}

YES_WORDS = {
    "zh": ("是", "对", "确认", "没错", "不错", "好的", "好", "可以", "嗯", "行"),
    "en": ("yes", "yeah", "yep", "correct", "right", "confirm", "sure", "ok", "okay"),
}
NO_WORDS = {
    # Not a bare 错 or 不: 没错 and 不错 say yes.
    "zh": ("不是", "不对", "错了", "不要", "否", "重新", "列表", "选择"),
    "en": ("no", "nope", "wrong", "not", "list", "choose", "other"),
}


@cache
def _lexicon() -> dict[str, Any]:
    raw: Any = yaml.safe_load((files("routing") / "lexicon.yaml").read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def _terms(items: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for item in items or ():
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(str(key) for key in item)
    return found


@cache
def need_hints(language: str) -> tuple[str, ...]:
    """The lexicon's strong, then normal, terms of every category, taken in turn per category so
    that the cap on hints never leaves a category out."""
    categories = _lexicon().get("categories") or {}
    per_category: list[list[str]] = []
    for body in categories.values():
        tiers = (body or {}).get(language) or {}
        terms = _terms(tiers.get("strong", [])) + _terms(tiers.get("normal", []))
        if language == "zh":
            # Pinyin abbreviations (dk for 贷款) are for texts; a recogniser never hears them.
            terms = [t for t in terms if not re.fullmatch(r"[A-Za-z0-9 ]+", t)]
        per_category.append([t for t in terms if 0 < len(t) <= 100])
    hints: list[str] = []
    seen: set[str] = set()
    depth = 0
    while len(hints) < MAX_HINTS and any(depth < len(terms) for terms in per_category):
        for terms in per_category:
            if depth < len(terms) and terms[depth] not in seen and len(hints) < MAX_HINTS:
                seen.add(terms[depth])
                hints.append(terms[depth])
        depth += 1
    return tuple(hints)


def spell_ticket(number: str, language: str) -> str:
    """``CQ2611280042-K`` read one character at a time, in groups a caller can write down."""
    canonical = normalise(number) or number
    match = re.fullmatch(r"([A-Z]+)(\d{6})(\d+)-?([A-Z])", canonical)
    if not match:
        return " ".join(ch for ch in canonical if ch.isalnum())
    prefix, day, seq, letter = match.groups()
    groups = [" ".join(prefix), " ".join(day), " ".join(seq), letter]
    return ("，" if language == "zh" else ", ").join(groups)


def spoken_digits(text: str) -> str:
    """Digits and Latin letters in a transcript, with number words turned into digits
    ("二六一一" → "2611", "two six one one" → "2611"), everything else dropped."""
    out: list[str] = []
    for token in re.findall(r"[A-Za-z]+|\d|[\u4e00-\u9fff]", text):
        if token.isdigit():
            out.append(token)
        elif token in _ZH_DIGITS:
            out.append(_ZH_DIGITS[token])
        elif token.lower() in _EN_DIGITS and len(token) > 1:
            out.append(_EN_DIGITS[token.lower()])
        elif re.fullmatch(r"[A-Za-z]+", token):
            out.append(token.upper())
    return "".join(out)


def ticket_from_speech(text: str) -> str | None:
    """A checked ticket number heard in speech, or None (a misheard digit fails the check)."""
    found = find_in_text(text)
    if found:
        return found
    compact = spoken_digits(text)
    match = re.search(r"(?:CQ)?(\d{10,})([A-Z])", compact)
    return normalise(match.group(1) + match.group(2)) if match else None


def ticket_from_keys(keys: str) -> str | None:
    """A ticket number keyed as its digits followed by the key that carries its check letter
    (K is on 5). The letter's key catches most mistyped digits; None when it does not agree."""
    keys = keys.strip().rstrip("#")
    if not re.fullmatch(r"\d{11,}", keys):
        return None
    digits, key = keys[:-1], keys[-1]
    letter = check_letter(digits)
    if letter not in KEYPAD.get(key, ""):
        return None
    return normalise(digits + letter)


def small_number(text: str, low: int, high: int) -> int | None:
    """A number from ``low`` to ``high`` in keys or speech ("4", "四分", "four")."""
    digits = spoken_digits(text)
    for ch in digits:
        if ch.isdigit() and low <= int(ch) <= high:
            return int(ch)
    return None


def yes_or_no(text: str, language: str) -> bool | None:
    lowered = text.lower()
    words = set(re.findall(r"[a-z]+", lowered))
    for lang in (language, "en" if language == "zh" else "zh"):
        # "不是" contains "是": look for a no first.
        if any(_has(lowered, words, w) for w in NO_WORDS[lang]):
            return False
        if any(_has(lowered, words, w) for w in YES_WORDS[lang]):
            return True
    return None


def _has(text: str, words: set[str], word: str) -> bool:
    return word in words if word.isascii() else word in text
