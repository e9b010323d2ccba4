"""Phone numbers: normalised to E.164 for identity, masked for display and logs."""

from __future__ import annotations

import phonenumbers


def normalise_phone(raw: str, region: str = "CN") -> str | None:
    """E.164, or None when the text is not a possible phone number."""
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """138****5678 style: keep the first three and last four digits of the national number."""
    if not phone:
        return ""
    try:
        parsed = phonenumbers.parse(phone, "CN")
        national = str(parsed.national_number)
    except phonenumbers.NumberParseException:
        national = "".join(ch for ch in phone if ch.isdigit())
    if len(national) <= 7:
        return national[:1] + "*" * max(len(national) - 2, 1) + national[-1:]
    return national[:3] + "*" * (len(national) - 7) + national[-4:]
