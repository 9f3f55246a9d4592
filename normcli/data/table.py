"""All of a command's inputs as one table, for code that wants a single lazy frame (train, predict).

Fitting and transforming work fragment by fragment; training reads everything into memory anyway,
so it sees its inputs as one Polars ``LazyFrame`` with one unified schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from normcli.data.diagnostics import polars_errors
from normcli.data.formats import ReadOptions
from normcli.data.inputs import Source, describe, open_sources
from normcli.data.schema import SourceSchema, read_schema, unify

if TYPE_CHECKING:
    import polars as pl


@dataclass
class Inputs:
    """The resolved inputs of one command, with their unified schema and a lazy scan of all rows."""

    sources: list[Source]
    options: ReadOptions
    _schemas: list[SourceSchema] | None = field(default=None, repr=False)
    _frames: dict[int, pl.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        """The inputs as the user named them (``<stdin>`` for a pipe)."""
        return [s.display for s in self.sources]

    @property
    def paths(self) -> list[str]:
        """The files read (streams have none)."""
        return [s.path for s in self.sources if s.path is not None]

    def describe(self) -> str:
        return describe(self.sources)

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Polars read errors turned into one-line DataErrors naming file and line."""
        return polars_errors(self.sources, self.options)

    def _read_schemas(self) -> list[SourceSchema]:
        if self._schemas is None:
            from normcli.data.streams import StreamReader, read_parquet_stream

            schemas = []
            for index, source in enumerate(self.sources):
                if source.is_stream:  # read into memory: training needs every row anyway
                    if source.format.text:
                        reader = StreamReader(source, self.options)
                        schema = read_schema(source, self.options, reader)
                        frames = list(reader.frames(schema.types))
                        import polars as pl

                        self._frames[index] = pl.concat(frames) if frames else schema.sample.clear()
                    else:
                        self._frames[index] = read_parquet_stream(source)
                        schema = SourceSchema(source, dict(self._frames[index].schema), self.options, sample=self._frames[index])
                        schema.fix_types()
                else:
                    schema = read_schema(source, self.options)
                schemas.append(schema)
            self._schemas = schemas
        return self._schemas

    def schema(self) -> pl.Schema:
        """Column names and the unified types (text formats: inferred from the first rows)."""
        import polars as pl

        schemas = self._read_schemas()
        if len(schemas) == 1:
            return pl.Schema(schemas[0].types)
        table = unify(schemas)
        types = {}
        for name, dtype in table.dtypes.items():
            holder = next(s for s in schemas if name in s.types)
            types[name] = pl.Float64 if dtype == "Float64" else holder.types[name]
        return pl.Schema(types)

    def scan(self, schema_overrides: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
        """A lazy frame over all inputs, concatenated in order; ``schema_overrides`` forces the
        types of columns (numeric features are read as Float64)."""
        import polars as pl

        schemas = self._read_schemas()
        overrides = schema_overrides or {}
        frames = []
        for index, schema in enumerate(schemas):
            if index in self._frames:
                frame = self._frames[index].lazy()
                stored = frame.collect_schema()
                types = {**schema.types, **{n: t for n, t in overrides.items() if n in schema.types}}
                frames.append(frame.cast({n: t for n, t in types.items() if stored[n] != t}))
                continue
            frames.append(scan_source(schema.source, schema.types, schema.options, overrides))
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")

    def source_schemas(self) -> list[SourceSchema]:
        """Each input's own schema (as inferred), in order."""
        return list(self._read_schemas())


def scan_source(
    source: Source, types: dict[str, pl.DataType], options: ReadOptions, overrides: dict[str, pl.DataType]
) -> pl.LazyFrame:
    """A lazy scan of one input file with its inferred ``types`` (and the ``options`` inference
    decided for it: :attr:`SourceSchema.options`), ``overrides`` forcing some columns' types (text
    formats read them so; Parquet casts)."""
    import polars as pl

    assert source.path is not None
    frame = source.format.scan(source.path, options, {name: overrides.get(name, dtype) for name, dtype in types.items()})
    if source.format.text:
        return frame
    return frame.with_columns([pl.col(n).cast(t) for n, t in overrides.items() if n in types])


@contextlib.contextmanager
def open_inputs(
    patterns: Sequence[str],
    options: ReadOptions,
    *,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> Iterator[Inputs]:
    """Resolve input arguments into :class:`Inputs` (see :func:`~normcli.data.inputs.open_sources`)."""
    with open_sources(patterns, options, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        yield Inputs(sources, options)
