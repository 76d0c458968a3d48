"""The French catalogue of the web pages is complete, and its compiled form is in step with it.

The ``.mo`` is kept in git (an installed MedDAV needs no build step), so these
tests fail when someone changes a string without updating the ``.po``, or the
``.po`` without compiling it (``pybabel compile -d webui/translations``).
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "webui" / "translations" / "fr" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def source_strings() -> set[str]:
    with open(ROOT / "webui" / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    return {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(ROOT, method_map, options_map)
    }


def po_catalogue() -> Catalog:
    with open(CATALOGUE / "messages.po", "rb") as f:
        return read_po(f, locale="fr")


def test_every_string_of_the_pages_has_a_french_translation() -> None:
    catalogue = po_catalogue()
    strings = source_strings()
    assert len(strings) > 100
    missing = sorted(s for s in strings if s not in catalogue or not catalogue[s].string)
    assert not missing, f"untranslated (update messages.po): {missing}"
    fuzzy = sorted(m.id for m in catalogue if m.id and m.fuzzy)
    assert not fuzzy, f"fuzzy translations to review: {fuzzy}"
    unused = sorted(m.id for m in catalogue if m.id and m.id not in strings)
    assert not unused, f"translations of strings no longer used: {unused}"


def test_translations_keep_the_placeholders() -> None:
    for message in po_catalogue():
        if message.id:
            source, french = str(message.id), str(message.string)
            assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(french)), source


def test_compiled_catalogue_is_in_step_with_the_po_file() -> None:
    with open(CATALOGUE / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    expected = BytesIO()
    write_mo(expected, po_catalogue())
    expected.seek(0)
    fresh = read_mo(expected)
    assert pairs(compiled) == pairs(fresh), "run: pybabel compile -d webui/translations"


def pairs(catalogue: Catalog) -> dict[object, object]:
    return {m.id: m.string for m in catalogue if m.id}
