"""Strict validation of items, clients and events against seller/data/schema.py.

Input: `RawTable`s, one per file, holding the cells as read (strings from CSV, typed values from
Parquet) in file order. Output: typed DataFrames with exactly the schema's columns, and a
`Problem` for every bad cell, row or file. Nothing here stops at the first problem: the user
fixes a file once, not twenty times.

Rules beyond the column types (documented in the README's data-format section):
- text cells are stripped; an empty cell is missing; required columns must be non-empty;
- `event_type` and `channel` are matched case-insensitively against schema.EVENT_TYPES/CHANNELS;
- timestamps are ISO 8601 and must carry an offset (`Z`, `+01:00`): a boutique exporting local
  time without one would silently shift by hours. A bare date (YYYY-MM-DD) means 00:00 UTC.
  `assume_utc=True` reads offset-less date-times as UTC instead;
- an event later than the import time (plus FUTURE_TOLERANCE for clock skew) is refused; item
  launch dates may be in the future (pre-announced pieces);
- duplicate ids reject every copy (which one is right cannot be known);
- an event must name a known item and client; one whose item or client was rejected is rejected.
Messages quote ids, enum values, numbers and timestamps, never free text (names are personal data).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from seller.data.schema import CHANNELS, EVENT_TYPES, PRIMARY_KEYS, TABLES, Column

# Known columns beyond the schema that are kept when present: sample data and stores cite
# events by a stable id, so a file's own event_id survives import.
EXTRA_COLUMNS = {"items": (), "clients": (), "events": (Column("event_id", "str", False),)}
FUTURE_TOLERANCE = pd.Timedelta(hours=1)  # clock skew between the retailer's systems and ours
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_ARROW = {"str": pa.string(), "float": pa.float64(), "bool": pa.bool_(),
          "datetime": pa.timestamp("us", tz="UTC")}
_DATE_ONLY = r"\d{4}-\d{2}-\d{2}"
_HAS_OFFSET = r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass
class RawTable:
    """One file's cells as read, before any parsing. `frame.index` is the 0-based data-row
    position in the file; `problems` are what the reader found (encoding, empty file...)."""

    table: str  # "items" | "clients" | "events"
    file: str  # file name as shown to the user
    kind: Literal["csv", "parquet"]
    frame: pd.DataFrame | None
    problems: list["Problem"] = field(default_factory=list)
    sha256: str = ""
    ignored: list[str] = field(default_factory=list)  # columns not in the schema, dropped


def row_number(kind: str, row: int) -> int:
    """Rows as the user sees them: a spreadsheet shows the CSV header as row 1, so the first
    data row is row 2; Parquet has no header row, so its first data row is row 1."""
    return row + 2 if kind == "csv" else row + 1


def row_label(kind: str, row: int) -> str:
    if kind == "csv":
        return f"row {row_number(kind, row)} (spreadsheet numbering, header = row 1)"
    return f"data row {row_number(kind, row)} (1-based)"


@dataclass
class Problem:
    table: str
    file: str
    kind: Literal["csv", "parquet"]
    row: int | None  # 0-based data-row position; None for a problem with the whole file/column
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(row_label(self.kind, self.row))
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class Validated:
    tables: dict[str, pd.DataFrame]  # good rows only, typed, events sorted with event_id
    problems: list[Problem]  # every problem found, file-level ones included
    rejected: dict[str, dict[int, list[Problem]]]  # table -> raw row position -> its problems
    read_rows: dict[str, int]

    @property
    def fatal(self) -> list[Problem]:
        """Problems no lenient import can work around (unreadable file, missing column)."""
        return [p for p in self.problems if p.row is None]


_TEXT = pd.StringDtype("pyarrow")  # Arrow string kernels: strip/regex/isin run in C++


def _as_text(series: pd.Series) -> pd.Series:
    """Cells -> stripped text, empty -> missing. Parquet numbers (e.g. numeric ids) become
    their decimal text: 1001.0 from a float id column means "1001"."""
    if not (pd.api.types.is_string_dtype(series)
            and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")):
        series = series.map(lambda v: None if v is None or v is pd.NaT or (
            not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v)) else
            str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    text = series.astype(_TEXT).str.strip()
    return text.mask(text == "")


def _parse_float(series: pd.Series, col: Column, report) -> pd.Series:
    text = _as_text(series)
    num = pd.to_numeric(text, errors="coerce").astype(float)
    bad = text.notna() & ~np.isfinite(num.fillna(0.0).to_numpy()) | (text.notna() & num.isna())
    for i in series.index[bad]:
        report(i, col.name, f"not a finite number: {text[i]!r}")
    if col.name == "price":
        for i in series.index[num < 0]:
            report(i, col.name, f"negative price {num[i]:g}")
    return num.where(~bad)


def _parse_bool(series: pd.Series, col: Column, report) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):  # Parquet booleans; a null means "no"
        return series.fillna(False).astype(bool)
    text = _as_text(series).fillna("").str.lower()
    out = text.isin(_TRUE)
    for i in series.index[~(out | text.isin(_FALSE))]:
        report(i, col.name, f"not a boolean: {text[i]!r} (use true/false, 1/0 or yes/no)")
    return out.astype(bool)


def _parse_datetime(series: pd.Series, col: Column, report, assume_utc: bool, file_report):
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(series):
        if not assume_utc:
            file_report(col.name, "Parquet timestamps have no time zone; write them tz-aware "
                                  "or pass --assume-utc to read them as UTC")
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
        return series.dt.tz_localize("UTC")
    text = _as_text(series)
    present = text.notna()
    s = text.fillna("")
    date_only = s.str.fullmatch(_DATE_ONLY)
    naive = present & ~date_only & ~s.str.contains(_HAS_OFFSET, regex=True)
    parsed = pd.to_datetime(s.where(present & (assume_utc | ~naive)), format="ISO8601",
                            utc=True, errors="coerce")
    for i in series.index[present & parsed.isna()]:
        if naive[i] and not assume_utc and not pd.isna(pd.to_datetime(s[i], format="ISO8601",
                                                                      errors="coerce")):
            report(i, col.name, f"timestamp {s[i]!r} has no time zone: add an offset "
                                f"(e.g. {s[i]}Z for UTC) or pass --assume-utc")
        else:
            report(i, col.name, f"cannot parse timestamp {s[i]!r} (expected ISO 8601, "
                                f"e.g. 2024-03-01T14:05:00+01:00)")
    return parsed


def _parse_table(raw: RawTable, assume_utc: bool, now: pd.Timestamp, problems: list[Problem]):
    """Typed frame (same index as the raw frame) with the schema's columns (+ known extras)."""
    frame = raw.frame
    columns = TABLES[raw.table] + EXTRA_COLUMNS[raw.table]

    def report(i, column, message):
        problems.append(Problem(raw.table, raw.file, raw.kind, int(i), column, message))

    def file_report(column, message):
        problems.append(Problem(raw.table, raw.file, raw.kind, None, column, message))

    missing = [c.name for c in TABLES[raw.table] if c.required and c.name not in frame.columns]
    for name in missing:
        file_report(name, f"missing required column (the {raw.table} file needs: "
                          f"{', '.join(c.name for c in TABLES[raw.table] if c.required)})")
    if missing:
        return None
    out = {}
    for col in columns:
        if col.name not in frame.columns:
            if col.kind == "bool":
                out[col.name] = pd.Series(False, index=frame.index)
            elif col.kind == "float":
                out[col.name] = pd.Series(np.nan, index=frame.index, dtype=float)
            elif col.kind == "datetime":
                out[col.name] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
            elif col in EXTRA_COLUMNS[raw.table]:
                continue  # an absent extra column stays absent (event_id is assigned later)
            else:
                out[col.name] = pd.Series(None, index=frame.index, dtype=object)
            continue
        cells = frame[col.name]
        if col.kind == "str":
            values = _as_text(cells)
        elif col.kind == "float":
            values = _parse_float(cells, col, report)
        elif col.kind == "bool":
            values = _parse_bool(cells, col, report)
        else:
            values = _parse_datetime(cells, col, report, assume_utc, file_report)
        if col.required:
            for i in frame.index[values.isna()]:
                if not (col.kind == "datetime" and cells[i] is not None and str(cells[i]).strip()):
                    report(i, col.name, "required value is empty")
        out[col.name] = values
    typed = pd.DataFrame(out, index=frame.index)
    if raw.table == "events":
        for name, allowed in (("event_type", EVENT_TYPES), ("channel", CHANNELS)):
            lowered = typed[name].str.lower()
            bad = lowered.notna() & ~lowered.isin(allowed)
            for i in typed.index[bad]:
                report(i, name, f"unknown {name.replace('_', ' ')} {typed[name][i]!r} "
                                f"(allowed: {', '.join(allowed)})")
            typed[name] = lowered.where(~bad)
        late = typed["timestamp"] > now + FUTURE_TOLERANCE
        for i in typed.index[late.fillna(False)]:
            report(i, "timestamp", f"timestamp {typed['timestamp'][i].isoformat()} is in the "
                                   f"future (import time {now.isoformat(timespec='seconds')})")
    key = PRIMARY_KEYS.get(raw.table) or ("event_id" if "event_id" in typed else None)
    if key:
        ids = typed[key]
        if key == "event_id":  # optional column, but once given every event needs its id
            for i in typed.index[ids.isna()]:
                report(i, key, "empty event_id (the file has an event_id column)")
        dup = ids.notna() & ids.duplicated(keep=False)
        if dup.any():
            rows_of = ids[dup].groupby(ids[dup]).groups
            for i in typed.index[dup]:
                others = [str(row_number(raw.kind, j)) for j in rows_of[ids[i]] if j != i]
                report(i, key, f"duplicate {key} {ids[i]!r} (also in row {', '.join(others[:5])})")
    return typed


def _check_references(raw: RawTable, events: pd.DataFrame, parsed: dict, bad_rows: dict,
                      problems: list[Problem]):
    for key, table in (("item_id", "items"), ("client_id", "clients")):
        ref = parsed.get(table)
        if ref is None:
            continue  # that file could not be read: its own problems already say so
        known = set(ref[key].dropna())
        rejected = set(ref.loc[list(bad_rows[table]), key].dropna()) if bad_rows[table] else set()
        good = known - rejected
        ids = events[key]
        for i in events.index[ids.notna() & ~ids.isin(good)]:
            value = ids[i]
            if value in rejected:
                msg = f"{key} {value!r} refers to a row rejected in the {table} file"
            else:
                msg = f"unknown {key} {value!r} (not in the {table} file)"
            problems.append(Problem(raw.table, raw.file, raw.kind, int(i), key, msg))


def arrow_schema(table: str, with_event_id: bool = True) -> pa.Schema:
    """The store's column types; also the in-memory dtypes of every loaded Dataset."""
    columns = TABLES[table] + (EXTRA_COLUMNS[table] if with_event_id else ())
    return pa.schema([(c.name, _ARROW[c.kind]) for c in columns])


def canonical(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """One Arrow pass gives freshly validated frames exactly the dtypes a stored one reads back
    with, whatever the pandas version."""
    return to_arrow(frame, table).to_pandas()


def to_arrow(frame: pd.DataFrame, table: str) -> pa.Table:
    """Typed by arrow_schema, without pandas' metadata (which would bring back whatever dtype
    the frame happened to have)."""
    schema = arrow_schema(table, with_event_id="event_id" in frame)
    return pa.Table.from_pandas(frame[schema.names], schema=schema,
                                preserve_index=False).replace_schema_metadata(None)


def finalize_events(events: pd.DataFrame) -> pd.DataFrame:
    """The shared contract's order: (client_id, timestamp, file order), fresh RangeIndex, and an
    `event_id` "e<row>" when the file brought none."""
    events = events.sort_values(["client_id", "timestamp"], kind="stable").reset_index(drop=True)
    if "event_id" not in events:
        events["event_id"] = [f"e{i}" for i in range(len(events))]
    return events


def validate_tables(raws: dict[str, RawTable], now: pd.Timestamp | None = None,
                    assume_utc: bool = False) -> Validated:
    """Check every table; return the good rows typed and every problem found."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    problems: list[Problem] = []
    parsed: dict[str, pd.DataFrame | None] = {}
    for table in ("items", "clients", "events"):
        raw = raws[table]
        problems.extend(raw.problems)
        if raw.frame is None or any(p.row is None for p in raw.problems):
            parsed[table] = None
            continue
        parsed[table] = _parse_table(raw, assume_utc, now, problems)

    bad = {t: {p.row for p in problems if p.table == t and p.row is not None}
           for t in ("items", "clients")}
    if parsed["events"] is not None:
        _check_references(raws["events"], parsed["events"], parsed, bad, problems)

    rejected: dict[str, dict[int, list[Problem]]] = {}
    tables = {}
    for table in ("items", "clients", "events"):
        mine = [p for p in problems if p.table == table and p.row is not None]
        rejected[table] = {}
        for p in mine:
            rejected[table].setdefault(p.row, []).append(p)
        if parsed[table] is not None:
            keep = ~parsed[table].index.isin(list(rejected[table]))
            tables[table] = parsed[table][keep].reset_index(drop=True)
    if "events" in tables:
        tables["events"] = finalize_events(tables["events"])
    tables = {t: canonical(frame, t) for t, frame in tables.items()}
    read_rows = {t: (0 if r.frame is None else len(r.frame)) for t, r in raws.items()}
    return Validated(tables, problems, rejected, read_rows)
