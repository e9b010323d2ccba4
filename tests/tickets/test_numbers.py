from __future__ import annotations

import itertools

from tickets.numbers import check_letter, find_in_text, format_number, normalise


def test_format_and_read_back() -> None:
    number = format_number("261127", 42)
    assert number.startswith("CQ2611270042-")
    assert normalise(number) == number
    assert normalise(number.lower().replace("-", " ")) == number
    assert normalise(number[2:]) == number  # callers often drop the prefix
    assert find_in_text(f"查询 {number.lower()} 谢谢") == number


def test_every_single_digit_error_and_neighbour_swap_is_caught() -> None:
    for sequence in (1, 42, 999, 7306):
        digits = f"261127{sequence:04d}"
        letter = check_letter(digits)
        for position, wrong in itertools.product(range(len(digits)), "0123456789"):
            if digits[position] == wrong:
                continue
            misheard = digits[:position] + wrong + digits[position + 1 :]
            assert normalise(f"CQ{misheard}-{letter}") is None, misheard
        for position in range(len(digits) - 1):
            a, b = digits[position], digits[position + 1]
            if a == b:
                continue
            swapped = digits[:position] + b + a + digits[position + 2 :]
            assert normalise(f"CQ{swapped}-{letter}") is None, swapped


def test_sequences_past_ten_thousand_keep_working() -> None:
    number = format_number("261127", 12345)
    assert normalise(number) == number
