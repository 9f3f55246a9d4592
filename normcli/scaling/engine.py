"""Engines run the fragment function over a fit's fragments and return the results in order.

The local engine runs fragments one after another in this process (Polars uses every core
inside each). A distributed engine maps the same :func:`~normcli.scaling.fragments.fragment_stats`
over workers; since the merge that follows is exact and in fragment order, every engine gives
byte-identical statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from normcli.scaling.fragments import Fragment, FragmentStats, fragment_stats


class Engine(Protocol):
    """Something that maps the fragment function over fragments, keeping their order, and tells
    ``progress`` the rows done so far (as often as it can: per block here, per fragment on a
    cluster)."""

    def map(self, fragments: Sequence[Fragment], progress: Callable[[int], None] | None = None) -> list[FragmentStats]: ...


class LocalEngine:
    """Fragments in order, in this process."""

    def map(self, fragments: Sequence[Fragment], progress: Callable[[int], None] | None = None) -> list[FragmentStats]:
        done = 0

        def block_done(rows: int) -> None:
            nonlocal done
            done += rows
            progress(done)  # type: ignore[misc]

        return [fragment_stats(fragment, block_done if progress else None) for fragment in fragments]
