"""Bilingual text catalogues of the dialogues, loaded from YAML beside this file."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml

LANGUAGES = ("zh", "en")


class TextCatalogueError(ValueError):
    pass


@cache
def catalogue(name: str) -> dict[str, dict[str, str]]:
    raw: Any = yaml.safe_load((files("ivr_flows") / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise TextCatalogueError(f"{name}.yaml: expected a mapping of text keys")
    for key, texts in raw.items():
        missing = [lang for lang in LANGUAGES if not isinstance(texts, dict) or lang not in texts]
        if missing:
            raise TextCatalogueError(f"{name}.yaml: {key}: missing {', '.join(missing)}")
    return raw


def text(name: str, key: str, language: str, **values: object) -> str:
    language = language if language in LANGUAGES else "zh"
    return catalogue(name)[key][language].format(**values)
