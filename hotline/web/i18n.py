"""The web pages' translations: one catalogue file (``hotline/i18n/messages.yaml``), zh and en
for every key, checked when the app starts; the language from ``?lang=``, then a cookie."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "hl_lang"
CATALOGUE = Path(__file__).resolve().parents[1] / "i18n" / "messages.yaml"


class CatalogueError(ValueError):
    """The translation catalogue is malformed; the message names the key."""


@lru_cache(maxsize=4)
def load_catalogue(path: Path = CATALOGUE) -> dict[str, dict[str, str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: not a mapping of keys")
    catalogue: dict[str, dict[str, str]] = {}
    for key, texts in raw.items():
        if not isinstance(texts, dict):
            raise CatalogueError(f"{path}: {key} is not a mapping of languages")
        missing = [lang for lang in LANGUAGES if not str(texts.get(lang) or "").strip()]
        if missing:
            raise CatalogueError(f"{path}: {key} lacks {', '.join(missing)}")
        extra = set(texts) - set(LANGUAGES)
        if extra:
            raise CatalogueError(f"{path}: {key} has unknown languages {sorted(extra)}")
        catalogue[str(key)] = {lang: str(texts[lang]) for lang in LANGUAGES}
    return catalogue


def pick_language(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    return DEFAULT_LANGUAGE


class Translator:
    def __init__(self, language: str, zone: ZoneInfo) -> None:
        self.language = language
        self.zone = zone
        self.catalogue = load_catalogue()

    def __call__(self, key: str, **values: object) -> str:
        texts = self.catalogue.get(key)
        if texts is None:
            return key
        text = texts[self.language]
        return text.format(**values) if values else text

    def label(self, prefix: str, value: object) -> str:
        """A state/channel/action label, falling back to the raw value."""
        if value is None:
            return ""
        key = f"{prefix}.{value}"
        return self(key) if key in self.catalogue else str(value)

    def when(self, moment: datetime | None) -> str:
        """A time in the hotline's zone (Asia/Shanghai), minutes precision."""
        if moment is None:
            return ""
        if moment.tzinfo is None:
            from datetime import UTC

            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
