"""`seller import`: read a retailer's CSV/Parquet files, validate them, write the project's store.

The store is a directory (STORE_VERSION 1):
    items.parquet, clients.parquet, events.parquet   schema columns (+ event_id), Arrow types
    manifest.json                                    format, schema version, row counts,
                                                     source file names + sha256, created_at
    rejects.csv                                      lenient imports only: rejected rows + reasons
Events are stored in the contract's order (client_id, timestamp, file order) with their event_id.

Writes are all-or-nothing: the store is built in a hidden temp folder next to --out and renamed
into place at the end, so --out is either absent, the old store, or the complete new one.
"""
from __future__ import annotations

import codecs
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from seller import __version__
from seller.paths import sha256_file, swap_into_place
from seller.data.schema import TABLES
from seller.data.validate import (EXTRA_COLUMNS, Problem, RawTable, Validated, row_number,
                                  to_arrow, validate_tables)

STORE_FORMAT = "seller-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
REJECTS = "rejects.csv"
CHUNK_ROWS = 200_000  # CSV/Parquet rows per read: bounded memory per step, few Python round trips
PROGRESS_MIN_BYTES = 8 << 20  # smaller files read in well under a second: no bar
MAX_PRINTED = 20  # problems listed before "... and N more"
# Each byte that is not UTF-8 is decoded to one code point of the last 256 of plane 16 (private
# use; never met in real text) so the row survives parsing and is reported, not lost.
_MARK_BASE = 0x10FF00
_MARKED = "[\U0010ff00-\U0010ffff]"
_marks = [0]  # bad bytes marked so far: a clean file (the usual case) skips the cell scan


def _mark_bad_bytes(exc: UnicodeDecodeError):
    _marks[0] += exc.end - exc.start
    return "".join(chr(_MARK_BASE + b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("seller-mark", _mark_bad_bytes)


class DataValidationError(ValueError):
    """Raised with every problem found; str() lists the first MAX_PRINTED."""

    def __init__(self, problems: list[Problem], header: str = "the input has problems"):
        self.problems = problems
        super().__init__(format_problems(problems, header))


class OutputExistsError(FileExistsError):
    pass


def format_problems(problems: list[Problem], header: str) -> str:
    lines = [f"{header}: {len(problems)} problem(s)."]
    lines += [f"  - {p}" for p in problems[:MAX_PRINTED]]
    if len(problems) > MAX_PRINTED:
        lines.append(f"  ... and {len(problems) - MAX_PRINTED} more")
    return "\n".join(lines)


# ---- reading ---------------------------------------------------------------------------------

def _bad_byte_offsets(path: Path) -> list[int]:
    offsets: list[int] = []

    def record(exc: UnicodeDecodeError):
        offsets.extend(range(exc.start, exc.end))
        return "", exc.end

    codecs.register_error("seller-record", record)  # re-registered per call: closes over offsets
    path.read_bytes().decode("utf-8", "seller-record")
    return offsets


def _report_bad_bytes(raw: RawTable, path: Path) -> None:
    """Name every cell holding non-UTF-8 bytes with the byte's file offset, then blank the marks.
    The k-th mark in header-then-row-major order is the k-th bad byte in the file."""
    frame = raw.frame
    text_cols = [c for c in frame.columns if frame[c].dtype == object]
    if not text_cols:
        return
    hit = pd.Series(False, index=frame.index)
    for c in text_cols:
        hit |= frame[c].astype(str).str.contains(_MARKED, regex=True)
    header_marks = sum(ch >= chr(_MARK_BASE) for name in frame.columns for ch in str(name))
    if not hit.any() and not header_marks:
        return
    offsets = iter(_bad_byte_offsets(path))
    for _ in range(header_marks):
        raw.problems.append(Problem(raw.table, raw.file, raw.kind, None, None,
                                    f"header has a non-UTF-8 byte at byte offset {next(offsets)}; "
                                    "save the file as UTF-8"))
    for i in frame.index[hit]:
        for c in frame.columns:
            marks = [ch for ch in str(frame.at[i, c]) if ch >= chr(_MARK_BASE)]
            if marks:
                where = [next(offsets, "?") for _ in marks]
                raw.problems.append(Problem(
                    raw.table, raw.file, raw.kind, int(i), str(c),
                    f"non-UTF-8 byte 0x{ord(marks[0]) - _MARK_BASE:02X} at byte offset {where[0]}"
                    f"{f' (+{len(marks) - 1} more in this cell)' if len(marks) > 1 else ''}; "
                    "save the file as UTF-8"))
    for c in text_cols:
        frame[c] = frame[c].str.replace(_MARKED, "\ufffd", regex=True)


def _read_csv(path: Path, raw: RawTable, progress: bool) -> None:
    size = path.stat().st_size
    chunks, marks_before = [], _marks[0]
    with open(path, encoding="utf-8-sig", errors="seller-mark", newline="") as f, \
            tqdm(total=size, unit="B", unit_scale=True, desc=f"reading {path.name}",
                 disable=not progress or size < PROGRESS_MIN_BYTES) as bar:
        try:
            # Blank lines are read (and dropped below) rather than skipped by the parser, so
            # row numbers keep matching what a spreadsheet shows.
            for chunk in pd.read_csv(f, dtype=object, keep_default_na=False, na_filter=False,
                                     skip_blank_lines=False, chunksize=CHUNK_ROWS):
                chunks.append(chunk)
                bar.update(f.buffer.tell() - bar.n)
        except pd.errors.EmptyDataError:
            raw.problems.append(Problem(raw.table, raw.file, "csv", None, None,
                                        "file is empty (no header row)"))
            return
        except (pd.errors.ParserError, ValueError) as e:
            raw.problems.append(Problem(raw.table, raw.file, "csv", None, None,
                                        f"malformed CSV: {e}"))
            return
    frame = pd.concat(chunks, ignore_index=True)
    blank = pd.Series(True, index=frame.index)
    for c in frame.columns:
        blank &= frame[c].eq("")
    raw.frame = frame[~blank]
    if _marks[0] != marks_before:
        _report_bad_bytes(raw, path)


def _read_parquet(path: Path, raw: RawTable, progress: bool) -> None:
    try:
        source = pq.ParquetFile(path)
        n = source.metadata.num_rows
        chunks = []
        with tqdm(total=n, unit="rows", desc=f"reading {path.name}",
                  disable=not progress or path.stat().st_size < PROGRESS_MIN_BYTES) as bar:
            for batch in source.iter_batches(batch_size=CHUNK_ROWS):
                chunks.append(batch.to_pandas())
                bar.update(batch.num_rows)
        raw.frame = (pd.concat(chunks, ignore_index=True) if chunks
                     else source.schema_arrow.empty_table().to_pandas())
    except (pa.ArrowException, OSError) as e:
        raw.problems.append(Problem(raw.table, raw.file, "parquet", None, None,
                                    f"cannot read as Parquet: {e}"))
        return
    frame = raw.frame
    for c in frame.columns:  # binary columns: decode, reporting bytes that are not UTF-8
        if frame[c].dtype == object and frame[c].map(type).eq(bytes).any():
            for i, v in frame[c].items():
                if isinstance(v, bytes):
                    try:
                        frame.at[i, c] = v.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raw.problems.append(Problem(
                            raw.table, raw.file, "parquet", int(i), str(c),
                            f"non-UTF-8 byte 0x{v[e.start]:02X} at byte offset {e.start} of the "
                            "value; write text columns as UTF-8"))
                        frame.at[i, c] = v.decode("utf-8", "replace")


def read_table(path: str | Path, table: str, progress: bool = True) -> RawTable:
    """Read one items/clients/events file (.csv or .parquet) into a RawTable; never raises for
    bad content: problems are recorded on the RawTable."""
    path = Path(path)
    kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    raw = RawTable(table, path.name, kind, None)

    def fail(message):
        raw.problems.append(Problem(table, path.name, kind, None, None, message))
        return raw

    if not path.is_file():
        return fail(f"file not found: {path}")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        return fail("unsupported file type (expected .csv or .parquet)")
    if path.stat().st_size == 0:
        return fail("file is empty (0 bytes)")
    raw.sha256 = sha256_file(path)
    (_read_parquet if kind == "parquet" else _read_csv)(path, raw, progress)
    if raw.frame is not None:  # " Item_ID" from a hand-edited export still means item_id
        raw.frame.columns = [str(c).strip().lower() for c in raw.frame.columns]
    if raw.frame is not None and len(raw.frame) == 0 and not raw.problems:
        fail("file has a header but no data rows")
    if raw.frame is not None:
        known = {c.name for c in TABLES[table] + EXTRA_COLUMNS[table]}
        raw.ignored = [str(c) for c in raw.frame.columns if c not in known]
    return raw


# ---- writing ---------------------------------------------------------------------------------

@dataclass
class ImportSummary:
    out: Path
    read: dict[str, int]
    imported: dict[str, int]
    rejected: dict[str, int]
    ignored_columns: dict[str, list[str]]

    def lines(self) -> list[str]:
        out = [f"{t}: {self.read[t]} read, {self.imported[t]} imported, {self.rejected[t]} rejected"
               for t in TABLES]
        out += [f"note: {t} columns ignored (not in the schema): {', '.join(cols)}"
                for t, cols in self.ignored_columns.items() if cols]
        return out


def _rejects_frame(raws: dict[str, RawTable], v: Validated) -> pd.DataFrame:
    rows = []
    for table in TABLES:
        raw = raws[table]
        for i, problems in sorted(v.rejected[table].items()):
            record = {str(k): (None if pd.isna(val) else str(val))
                      for k, val in raw.frame.loc[i].items()}
            rows.append({"table": table, "file": raw.file, "row": row_number(raw.kind, i),
                         "columns": ";".join(dict.fromkeys(p.column or "" for p in problems)),
                         "reasons": " | ".join(p.message for p in problems),
                         "record": json.dumps(record, ensure_ascii=False)})
    return pd.DataFrame(rows, columns=["table", "file", "row", "columns", "reasons", "record"])


def _check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file()):
        raise OutputExistsError(f"{out} exists and is not a SELLER store (no {MANIFEST}); "
                                "refusing to replace it even with --force")


def write_store(out: Path, raws: dict[str, RawTable], v: Validated, lenient: bool,
                assume_utc: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = {"format": STORE_FORMAT, "schema_version": STORE_VERSION,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "seller_version": __version__, "mode": "lenient" if lenient else "strict",
                    "assume_utc": assume_utc, "tables": {}}
        for table in TABLES:
            frame = v.tables[table]
            pq.write_table(to_arrow(frame, table), tmp / f"{table}.parquet")
            manifest["tables"][table] = {
                "file": f"{table}.parquet", "rows": len(frame),
                "rejected": len(v.rejected[table]),
                "source": {"name": raws[table].file, "sha256": raws[table].sha256}}
        if lenient:
            _rejects_frame(raws, v).to_csv(tmp / REJECTS, index=False)
            manifest["rejects"] = REJECTS
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def run_import(items: str | Path, clients: str | Path, events: str | Path, out: str | Path, *,
               lenient: bool = False, force: bool = False, assume_utc: bool = False,
               progress: bool = True) -> ImportSummary:
    """Validate the three files and write a store at `out`.

    Strict (default): any problem raises DataValidationError and nothing is written.
    Lenient: good rows are imported, rejected ones go to rejects.csv with their reasons; a
    problem with a whole file (unreadable, empty, missing column) still raises.
    """
    out = Path(out)
    _check_out(out, force)  # before reading: a refused --out should not cost a full read
    raws = {t: read_table(p, t, progress)
            for t, p in (("items", items), ("clients", clients), ("events", events))}
    v = validate_tables(raws, assume_utc=assume_utc)
    if v.fatal or (v.problems and not lenient):
        raise DataValidationError(v.fatal if lenient else v.problems,
                                  "import refused, nothing was written")
    write_store(out, raws, v, lenient, assume_utc)
    return ImportSummary(out, v.read_rows, {t: len(v.tables[t]) for t in TABLES},
                         {t: len(v.rejected[t]) for t in TABLES},
                         {t: raws[t].ignored for t in TABLES})
