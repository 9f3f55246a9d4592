"""The column-selection language of ``--columns``, ``--exclude``, ``--features``, ``--keep``, ``--text``...

One option value is a comma-separated list of items (repeat the option to add more). Each item is

* a column **name**: ``age``. A name containing a comma, or surrounding spaces, is written in
  double quotes, CSV-style (``"income, net"``; ``""`` for a quote inside);
* a **glob**: ``f_*``, ``sensor_?``, ``x[0-9]`` (``*``, ``?`` and ``[...]`` as in the shell);
* a **regular expression** after ``re:``: ``re:^sensor_\\d+$`` (Python syntax, searched in the name:
  anchor it with ``^…$`` to match whole names);
* a 1-based **index** or an inclusive **range** of indices: ``3``, ``1-3``, ``5-`` (to the last).

An item that is exactly the name of a column is that column, whatever it looks like (a column
called ``2020`` or ``a*`` is selected by its name). Every item must match at least one column: an
item that matches nothing is an error naming it, never silently nothing. Items resolve in the
order given, each to its columns in table order; a column selected twice counts once.

Parsing (:func:`split_items`, :func:`parse_items`) is syntax only and happens while options are
read; resolving (:func:`select`) needs the table's column names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from normcli.errors import UsageError

_RANGE = re.compile(r"(\d+)(?:-(\d*))?")
_GLOB_CHARS = re.compile(r"[*?\[]")
MAX_SHOWN = 20
"""Column names listed at most in an error's hint."""


@dataclass(frozen=True)
class Item:
    """One item of a selection: what the user wrote and how it matches column names."""

    text: str
    kind: str  # "name", "glob", "regex", "range"
    quoted: bool = False

    def matches(self, names: Sequence[str]) -> list[str]:
        """The names this item selects, in table order (an exact name first, as the module says)."""
        if self.text in names:
            return [self.text]
        if self.kind == "glob":
            return [n for n in names if fnmatch.fnmatchcase(n, self.text)]
        if self.kind == "regex":
            pattern = self.regex()
            return [n for n in names if pattern.search(n)]
        if self.kind == "range":
            first, last = _bounds(self.text, len(names))
            return list(names[first - 1 : last]) if 1 <= first <= last else []
        return []

    def regex(self) -> re.Pattern[str]:
        return re.compile(self.text[3:])


def _bounds(text: str, count: int) -> tuple[int, int]:
    match = _RANGE.fullmatch(text)
    assert match is not None
    first = int(match.group(1))
    last = first if match.group(2) is None else (int(match.group(2)) if match.group(2) else max(count, first))
    return first, last


def split_items(text: str, option: str) -> list[str]:
    """Split one option value at the commas outside double quotes (quotes removed, ``""`` → ``"``,
    unquoted items stripped of surrounding spaces, empty items dropped)."""
    return [item.text for item in _tokens(text, option)]


def _tokens(text: str, option: str) -> list[Item]:
    items: list[Item] = []
    i, n = 0, len(text)
    while i <= n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars = []
            while True:
                if i >= n:
                    raise UsageError(f"{option}: the quote in '{text}' is never closed", hint='write "a,b" for a name with a comma')
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        chars.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                raise UsageError(f"{option}: unexpected text after the quoted name in '{text}'", hint="separate names with commas")
            items.append(Item("".join(chars), "name", quoted=True))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            word = text[i:end].strip()
            if word:
                items.append(_classify(word, option))
            i = end
        i += 1
    return items


def _classify(word: str, option: str) -> Item:
    if word.startswith("re:"):
        return Item(word, "regex")
    if _RANGE.fullmatch(word):
        return Item(word, "range")
    if _GLOB_CHARS.search(word):
        return Item(word, "glob")
    return Item(word, "name")


def parse_items(values: Iterable[str] | str | None, option: str) -> tuple[Item, ...]:
    """Every item of an option given one or more times (``--columns a,b --columns 'c*'``)."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(item for value in values for item in _tokens(value, option))


def as_items(patterns: Iterable[str | Item], option: str) -> tuple[Item, ...]:
    """Items from the Python API's lists, where each string is one item (no comma splitting; a
    string with surrounding spaces is a plain name)."""
    return tuple(
        p if isinstance(p, Item) else (_classify(p, option) if p.strip() == p else Item(p, "name")) for p in patterns
    )


def select(patterns: Iterable[str | Item], names: Sequence[str], option: str) -> list[str]:
    """The columns of ``names`` the items select, in the order explained in the module docstring.

    An item that selects nothing is a :class:`~normcli.errors.UsageError` naming it and the columns.
    """
    chosen: dict[str, None] = {}
    for item in as_items(patterns, option):
        try:
            found = item.matches(names)
        except re.error as exc:
            raise UsageError(f"{option}: '{item.text}' is not a valid regular expression ({exc})") from None
        if not found:
            raise _no_match(item, names, option)
        chosen.update(dict.fromkeys(found))
    return list(chosen)


def _no_match(item: Item, names: Sequence[str], option: str) -> UsageError:
    hint = f"columns are: {shown_names(names)}"
    if item.kind == "range":
        first, last = _bounds(item.text, len(names))
        if not 1 <= first <= last:
            return UsageError(f"{option}: '{item.text}' is not a range of column numbers", hint="columns count from 1, e.g. 1-3 or 5-")
        return UsageError(f"{option}: column {first} is out of range (there are {len(names)} columns)", hint=hint)
    if item.kind == "name":
        return UsageError(f"{option}: no column named '{item.text}'", hint=hint)
    return UsageError(f"{option}: '{item.text}' matches no column", hint=hint)


def shown_names(names: Sequence[str]) -> str:
    """The first column names for a hint, written as they would be selected (quoted if needed)."""
    shown = [f'"{n}"' if "," in n or n.strip() != n else n for n in names[:MAX_SHOWN]]
    return ", ".join(shown) + (" …" if len(names) > MAX_SHOWN else "")


def named(patterns: Iterable[str | Item], names: Sequence[str], option: str) -> set[str]:
    """The columns some item names exactly (not through a glob, regex or index): those the user
    asked for by name, for whom a column that cannot be used is an error rather than a skip."""
    return {item.text for item in as_items(patterns, option) if item.text in names}
