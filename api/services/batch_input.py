"""A batch's items from what the client sent: JSON items, a sweep grid, or a CSV/JSONL file (row numbers kept)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from api.errors import InvalidParameters, PayloadTooLarge
from api.services.jobs import CONTROL_KEYS
from comfyws.config import get_config
from workflows.catalog import Workflow
from workflows.errors import ParameterError
from workflows.values import ParamType, convert


@dataclass
class Entry:
    """One item as submitted: its position, the file line it came from, its body or why it has none."""

    index: int
    body: dict[str, Any] = field(default_factory=dict)
    row: int | None = None
    error: str | None = None


def _too_many(count: int, what: str) -> InvalidParameters:
    limit = get_config().batches.max_items
    return InvalidParameters([{"field": what, "message": f"{count} items; a batch holds at most {limit}"}])


def check_count(count: int, what: str = "items") -> None:
    if count == 0:
        raise InvalidParameters([{"field": what, "message": "a batch needs at least one item"}])
    if count > get_config().batches.max_items:
        raise _too_many(count, what)


def from_json(items: list[dict[str, Any]] | None, sweep: dict[str, list[Any]] | None) -> list[Entry]:
    """Explicit items, then the sweep's grid (every combination, in the order the keys were given)."""
    entries = [Entry(index=i, body=dict(item)) for i, item in enumerate(items or [])]
    if sweep:
        for name, values in sweep.items():
            if not values:
                raise InvalidParameters([{"field": f"sweep.{name}", "message": "needs at least one value"}])
        size = 1
        for values in sweep.values():
            size *= len(values)
        if size + len(entries) > get_config().batches.max_items:
            raise _too_many(size + len(entries), "sweep")
        names = list(sweep)
        for combination in itertools.product(*sweep.values()):
            entries.append(Entry(index=len(entries), body=dict(zip(names, combination, strict=True))))
    check_count(len(entries))
    return entries


def from_file(filename: str, data: bytes, workflow: Workflow, defaults: dict[str, Any]) -> list[Entry]:
    """Items of an uploaded CSV (header = parameter names) or JSONL file (one object a line)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidParameters([{"field": "file", "message": f"not UTF-8 text (byte {exc.start})"}]) from exc
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        entries = _jsonl(text)
    else:
        entries = _csv(text, workflow, defaults)
    check_count(len(entries), "file")
    return entries


def _jsonl(text: str) -> list[Entry]:
    entries: list[Entry] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = Entry(index=len(entries), row=line_no)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            entry.error = f"line {line_no}: not JSON ({exc.msg})"
        else:
            if isinstance(value, dict):
                entry.body = value
            else:
                entry.error = f"line {line_no}: must be a JSON object"
        entries.append(entry)
        if len(entries) > get_config().batches.max_items:
            raise _too_many(len(entries), "file")
    return entries


def _csv(text: str, workflow: Workflow, defaults: dict[str, Any]) -> list[Entry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InvalidParameters([{"field": "file", "message": "the CSV file is empty"}]) from None
    except csv.Error as exc:
        raise InvalidParameters([{"field": "file", "message": f"line 1: {exc}"}]) from exc
    _check_columns(header, workflow, defaults)
    kinds = {p.name: p.type for p in workflow.parameters()}
    entries: list[Entry] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            entries.append(_csv_row(len(entries), reader.line_num, header, cells, kinds))
            if len(entries) > get_config().batches.max_items:
                raise _too_many(len(entries), "file")
    except csv.Error as exc:
        raise InvalidParameters([{"field": "file", "message": f"line {reader.line_num}: {exc}"}]) from exc
    return entries


def _check_columns(header: list[str], workflow: Workflow, defaults: dict[str, Any]) -> None:
    known = {p.name for p in workflow.parameters()} | set(CONTROL_KEYS) - {"workflow_name"}
    errors = [
        {"field": name or f"column {i + 1}", "message": f"unknown column; {workflow.name} takes {sorted(known)}"}
        for i, name in enumerate(header)
        if name not in known
    ]
    errors += [
        {"field": p.name, "message": "required: add this column or give it in defaults"}
        for p in workflow.parameters()
        if p.required and p.name not in header and p.name not in defaults
    ]
    if len(set(header)) != len(header):
        errors.append({"field": "file", "message": "a column name appears twice"})
    if errors:
        raise InvalidParameters(errors)


def _csv_row(index: int, line: int, header: list[str], cells: list[str], kinds: dict[str, ParamType]) -> Entry:
    entry = Entry(index=index, row=line)
    if len(cells) != len(header):
        entry.error = f"row {line}: {len(cells)} cells, the header has {len(header)}"
        return entry
    for name, cell in zip(header, cells, strict=True):
        if cell == "":
            continue  # an empty cell takes the default
        kind = kinds.get(name, ParamType.STRING)
        try:
            entry.body[name] = cell if kind in (ParamType.STRING, ParamType.IMAGE) else convert(name, kind, cell)
        except ParameterError as exc:
            entry.error = f"row {line}: {exc.field}: {exc.message}"
            return entry
    return entry


def check_file_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"the file is over the upload limit of {limit} bytes")
