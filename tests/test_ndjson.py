"""NDJSON inputs: every line's keys and types count (issue 10, items 4 and 17).

Polars infers an NDJSON file's columns from its first lines and then drops keys it did not see;
normcli used to lose a key first seen on line 10,001 without a word, and refused a stream whose
integers turned into floats after 10,000 lines. References: json and numpy on the same values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from normcli.errors import DataError
from normcli.scaling.apply import transform
from normcli.scaling.fit import fit
from normcli.data.streams import CHUNK_BYTES


def write_lines(path: Path, rows: list[dict]) -> bytes:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(data)
    return data


def late_key_rows(n: int, at: int) -> list[dict]:
    return [{"a": i, "note": "x"} | ({"b": i * 0.5} if i >= at else {}) for i in range(n)]


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_key_first_seen_after_line_10000_is_fitted(tmp_path: Path, via: str) -> None:
    rows = late_key_rows(12_000, at=10_500)
    data = write_lines(tmp_path / "late.ndjson", rows)
    if via == "file":
        stats = fit([str(tmp_path / "late.ndjson")])
    else:
        stats = fit([], format="ndjson", stdin=io.BytesIO(data))
    assert stats.names == ["a", "b"]
    b = np.array([r["b"] for r in rows if "b" in r])
    column = stats.column("b")
    assert (column.count, column.null_count) == (len(b), 10_500)
    assert column.mean == pytest.approx(b.mean(), rel=1e-15) and column.std == pytest.approx(b.std(), rel=1e-15)


def test_transform_keeps_a_late_key(tmp_path: Path) -> None:
    rows = late_key_rows(12_000, at=11_999)
    write_lines(tmp_path / "late.ndjson", rows)
    stats = fit([str(tmp_path / "late.ndjson")], columns=["a"])
    transform([str(tmp_path / "late.ndjson")], stats=stats, output=str(tmp_path / "out.ndjson"))
    out = pl.read_ndjson(tmp_path / "out.ndjson", infer_schema_length=None)
    assert out.columns == ["a", "note", "b"]
    assert out["b"].to_list() == [None] * 11_999 + [11_999 * 0.5]


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_integers_then_a_float_are_floats(tmp_path: Path, via: str) -> None:
    values = list(range(10_050))
    values[10_020] = 10_020.5
    data = write_lines(tmp_path / "mixed.ndjson", [{"a": v} for v in values])
    if via == "file":
        stats = fit([str(tmp_path / "mixed.ndjson")])
    else:
        stats = fit([], format="ndjson", stdin=io.BytesIO(data))
    x = np.array(values, dtype=float)
    assert stats.column("a").mean == pytest.approx(x.mean(), rel=1e-15)
    assert stats.column("a").std == pytest.approx(x.std(), rel=1e-15)


def rows_past_the_first_chunk() -> int:
    """Enough short lines that the last ones come after the first chunk a stream is read in."""
    return CHUNK_BYTES // len(json.dumps({"a": 100_000, "d": 100_000}) + "\n") + 20_000


def test_a_stream_whose_late_lines_bring_a_new_key_is_refused_with_the_line(tmp_path: Path) -> None:
    """A stream is read once: a key after its first chunk cannot be added; it is named, not dropped."""
    n = rows_past_the_first_chunk()
    rows = [{"a": i, "d": i} for i in range(n)]
    rows[n - 5]["surprise"] = 1
    data = write_lines(tmp_path / "s.ndjson", rows)
    with pytest.raises(DataError, match=f"line {n - 4} has the key 'surprise'"):
        fit([], format="ndjson", stdin=io.BytesIO(data))
    stats = fit([str(tmp_path / "s.ndjson")])  # the same lines as a file: fitted
    assert stats.column("surprise").count == 1


def test_a_stream_whose_integer_column_turns_float_past_the_first_chunk_is_refused(tmp_path: Path) -> None:
    """Casting 1.5 into the Int64 the first chunk gave a passed-through column would write 1."""
    n = rows_past_the_first_chunk()
    rows = [{"a": i, "d": i} for i in range(n)]
    rows[n - 3]["d"] = 1.5
    data = write_lines(tmp_path / "s.ndjson", rows)
    stats = fit([str(tmp_path / "s.ndjson")], columns=["a"])
    with pytest.raises(DataError, match=f"column 'd' has a Float64 value at line {n - 2}"):
        transform([], stats=stats, format="ndjson", stdin=io.BytesIO(data), stdout=io.BytesIO())
    out = tmp_path / "out.ndjson"
    transform([str(tmp_path / "s.ndjson")], stats=stats, output=str(out))  # from the file: floats
    assert pl.read_ndjson(out, infer_schema_length=None)["d"][n - 3] == 1.5
