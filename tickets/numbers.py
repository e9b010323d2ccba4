"""Human-friendly ticket numbers: ``CQ`` + local date + daily sequence + check letter.

``CQ2611270042-K`` is the 42nd ticket of 27 November 2026 (Asia/Shanghai). The check letter is
a weighted sum of the digits modulo 23, a prime, with weights 1..n: any single misheard digit
and any swap of two neighbouring digits changes it, so a number read back over the phone with
such an error is caught instead of opening the wrong case. The 23 letters leave out I, O and Z,
which are easily taken for 1, 0 and 2.
"""

from __future__ import annotations

import re

PREFIX = "CQ"
CHECK_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXY"
_NUMBER = re.compile(rf"^{PREFIX}(\d{{10,}})-?([{CHECK_ALPHABET}])$")


def check_letter(digits: str) -> str:
    total = sum(int(d) * weight for weight, d in enumerate(digits, start=1))
    return CHECK_ALPHABET[total % len(CHECK_ALPHABET)]


def format_number(day: str, sequence: int) -> str:
    """``day`` is YYMMDD in local time."""
    digits = f"{day}{sequence:04d}"
    return f"{PREFIX}{digits}-{check_letter(digits)}"


def normalise(text: str) -> str | None:
    """A ticket number as a caller may type or say it (spaces, lower case, no dash), checked.

    Returns the canonical form, or None when it is malformed or its check letter is wrong.
    """
    compact = re.sub(r"[\s\-_.]", "", text).upper()
    if not compact.startswith(PREFIX):
        compact = PREFIX + compact
    found = _NUMBER.match(compact)
    if not found:
        return None
    digits, letter = found[1], found[2]
    if check_letter(digits) != letter:
        return None
    return f"{PREFIX}{digits}-{letter}"


def find_in_text(text: str) -> str | None:
    """The first valid ticket number in free text (an SMS like '查询 CQ2611270042-K')."""
    for candidate in re.findall(r"(?:CQ)?\s*\d{10,}\s*-?\s*[A-Za-z]", text, flags=re.IGNORECASE):
        number = normalise(candidate)
        if number:
            return number
    return None
