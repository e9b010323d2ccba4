"""Reading catalogue data files (CSV or YAML) into validated rows that know where they came from."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

RowT = TypeVar("RowT", bound=BaseModel)


class CatalogueLoadError(Exception):
    """A data file is wrong; the message is ``file:line: reason``."""


@dataclass(frozen=True)
class Located(Generic[RowT]):
    row: RowT
    file: str
    line: int

    def error(self, reason: str) -> CatalogueLoadError:
        return CatalogueLoadError(f"{self.file}:{self.line}: {reason}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CatalogueLoadError(f"{path.name}:1: empty file, a header row is needed")
        for record in reader:
            if None in record:
                raise CatalogueLoadError(
                    f"{path.name}:{reader.line_num}: more fields than the header has"
                )
            if all(not (value or "").strip() for value in record.values()):
                continue
            yield reader.line_num, {k: v for k, v in record.items() if v is not None}


def _yaml_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise CatalogueLoadError(f"{path.name}:{line}: invalid YAML: {exc}") from None
    if root is None:
        return
    if not isinstance(root, yaml.SequenceNode):
        raise CatalogueLoadError(f"{path.name}:1: expected a list of records")
    for node in root.value:
        line = node.start_mark.line + 1
        value = yaml.SafeLoader(yaml.serialize(node)).get_single_data()
        if not isinstance(value, dict):
            raise CatalogueLoadError(f"{path.name}:{line}: expected a mapping")
        yield line, value


def find_file(directory: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".yaml", ".yml"):
        candidate = directory / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def read_rows(path: Path, schema: type[RowT]) -> list[Located[RowT]]:
    records = _csv_records(path) if path.suffix == ".csv" else _yaml_records(path)
    rows: list[Located[RowT]] = []
    for line, record in records:
        try:
            row = schema.model_validate(record)
        except ValidationError as exc:
            raise CatalogueLoadError(f"{path.name}:{line}: {_describe(exc)}") from None
        rows.append(Located(row=row, file=path.name, line=line))
    return rows
