from __future__ import annotations

import re

import pytest

from ivr_flows.speech import (
    KEYPAD,
    MAX_HINTS,
    need_hints,
    small_number,
    spell_ticket,
    spoken_digits,
    ticket_from_keys,
    ticket_from_speech,
    yes_or_no,
)
from tickets.numbers import format_number

NUMBER = format_number("261130", 42)  # CQ2611300042-?


def test_ticket_numbers_are_read_in_groups_one_character_at_a_time() -> None:
    letter = NUMBER[-1]
    assert spell_ticket(NUMBER, "zh") == f"C Q，2 6 1 1 3 0，0 0 4 2，{letter}"
    assert spell_ticket(NUMBER, "en") == f"C Q, 2 6 1 1 3 0, 0 0 4 2, {letter}"


def test_keyed_numbers_end_with_the_key_of_their_check_letter() -> None:
    key = next(k for k, letters in KEYPAD.items() if NUMBER[-1] in letters)
    assert ticket_from_keys("2611300042" + key + "#") == NUMBER
    wrong_key = next(k for k in KEYPAD if k != key)
    assert ticket_from_keys("2611300042" + wrong_key) is None
    assert ticket_from_keys("12#") is None


def test_spoken_numbers_in_either_language() -> None:
    letter = NUMBER[-1]
    assert spoken_digits("二六一一三零 零零四二") == "2611300042"
    assert ticket_from_speech(f"我的工单号是二六幺幺三洞零零四二 {letter}") == NUMBER
    assert ticket_from_speech(f"two six one one three zero zero zero four two {letter}") == NUMBER
    assert ticket_from_speech(f"CQ 2611300042 {letter}") == NUMBER
    assert ticket_from_speech("二六一一三零零零四三 " + letter) is None  # misheard digit


@pytest.mark.parametrize(
    ("text", "language", "answer"),
    [
        ("是的", "zh", True),
        ("不是", "zh", False),
        ("对，没错", "zh", True),
        ("不错", "zh", True),
        ("yes please", "en", True),
        ("no, the other one", "en", False),
        ("嗯……", "zh", True),
        ("hmm", "en", None),
    ],
)
def test_yes_or_no(text: str, language: str, answer: bool | None) -> None:
    assert yes_or_no(text, language) is answer


def test_small_numbers() -> None:
    assert small_number("4", 1, 5) == 4
    assert small_number("打五分吧", 1, 5) == 5
    assert small_number("three", 1, 5) == 3
    assert small_number("9", 1, 5) is None


@pytest.mark.parametrize("language", ["zh", "en"])
def test_need_hints_come_from_the_lexicon(language: str) -> None:
    hints = need_hints(language)
    assert 40 < len(hints) <= MAX_HINTS
    assert len(set(hints)) == len(hints)
    assert all(len(h) <= 100 for h in hints)
    wanted = {"zh": ["贷款", "律师", "培训", "检测"], "en": ["loan", "lawyer", "training"]}
    for word in wanted[language]:
        assert word in hints
    if language == "zh":
        assert not [h for h in hints if re.fullmatch(r"[A-Za-z ]+", h)]
