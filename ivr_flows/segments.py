"""SMS length in segments, as carriers count it."""

from __future__ import annotations

# GSM 03.38 basic character set; anything outside it makes the whole message UCS-2.
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€")


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in text)


def segments(text: str) -> int:
    if is_gsm7(text):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


MAX_REPLY_SEGMENTS = 3
