"""Encrypted names: NFC lookup, the given form kept, case-sensitivity, folder binding."""

from __future__ import annotations

import unicodedata

import pytest

from server.crypto import OrgKey, lookup_form, open_name, seal_given_name, seal_lookup_name
from server.errors import DecryptionFailed

KEY = OrgKey(b"k" * 16, bytes(range(32)))
NFC = unicodedata.normalize("NFC", "Échographie café.pdf")
NFD = unicodedata.normalize("NFD", NFC)


def test_nfc_and_nfd_have_the_same_lookup_ciphertext() -> None:
    assert NFC != NFD
    assert seal_lookup_name(KEY, NFC, 7) == seal_lookup_name(KEY, NFD, 7)


def test_given_form_is_stored_only_when_it_differs() -> None:
    assert seal_given_name(KEY, NFC, 7) is None
    given = seal_given_name(KEY, NFD, 7)
    assert given is not None
    assert open_name(KEY, seal_lookup_name(KEY, NFD, 7), given, 7) == NFD


def test_names_are_case_sensitive() -> None:
    assert seal_lookup_name(KEY, "Report.pdf", 1) != seal_lookup_name(KEY, "report.pdf", 1)


def test_same_name_in_two_folders_differs() -> None:
    assert seal_lookup_name(KEY, "a.txt", 1) != seal_lookup_name(KEY, "a.txt", 2)


def test_ciphertext_hides_the_name() -> None:
    assert b"Echographie" not in seal_lookup_name(KEY, "Echographie.pdf", 1)


def test_a_name_moved_to_another_folder_does_not_open() -> None:
    sealed = seal_lookup_name(KEY, "a.txt", 1)
    with pytest.raises(DecryptionFailed):
        open_name(KEY, sealed, None, 2)


def test_lookup_form_is_nfc() -> None:
    assert lookup_form(NFD) == NFC
