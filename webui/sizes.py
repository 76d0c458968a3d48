"""Sizes as people type and read them: "500 Mo", "2 GB", "1,5 Go" (decimal units, 1 MB = 10⁶ bytes).

Quotas are typed in the admin pages in either language; French writes "o"
(octet) where English writes "B", and a decimal comma.  Units are decimal
(as drives and operating systems show them today), so "1 GB" is 10⁹ bytes.
"""

from __future__ import annotations

import re

from babel.numbers import format_decimal

__all__ = ["format_size", "parse_size"]

_UNITS = {"": 1, "b": 1, "o": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([kmgt]?)([bo]?)\s*$", re.IGNORECASE)
_STEPS = (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def parse_size(text: str) -> int:
    """The number of bytes ``text`` says ("1.5 GB", "500 Mo", "1000"); ValueError when it says none."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, prefix, _ = match.groups()
    value = float(number.replace(",", ".")) * _UNITS[prefix.lower()]
    if value >= 2**62:
        raise ValueError("size too large")
    return round(value)


def format_size(size: int, locale: str) -> str:
    """``size`` bytes in the largest fitting unit, in the language of ``locale``: "1,5 Go", "1.5 GB"."""
    byte = "o" if locale == "fr" else "B"
    for prefix, factor in _STEPS:
        if size >= factor:
            number = format_decimal(round(size / factor, 1), format="#,##0.#", locale=locale)
            return f"{number}\N{NO-BREAK SPACE}{prefix}{byte}"
    return f"{format_decimal(size, locale=locale)}\N{NO-BREAK SPACE}{byte}"
