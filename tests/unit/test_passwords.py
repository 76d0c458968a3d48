"""The password policy: length after NFC, zxcvbn strength with the user's own words, optional composition."""

from __future__ import annotations

import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from server.auth import PasswordPolicy, PasswordRejected, Problem
from server.auth.passwords import STRENGTH_PREFIX
from server.config import PasswordSettings, settings_from_dict
from server.errors import BadRequest


def policy(tmp_path: Path, **options: Any) -> PasswordPolicy:
    """The policy of ``[passwords]`` with these options, the others at their defaults."""
    settings = settings_from_dict({"passwords": options}, base_dir=tmp_path).passwords
    return PasswordPolicy(settings)


def codes(p: PasswordPolicy, password: str, **kwargs: Any) -> list[str]:
    return [problem.code for problem in p.problems(password, **kwargs)]


HOSPITAL = {"min_length": 6, "min_strength": 0, "require_digit": True, "require_lower": True, "require_upper": True}


# -- defaults ------------------------------------------------------------------------


def test_defaults_are_twelve_to_128_characters_strength_3_no_composition(tmp_path: Path) -> None:
    assert policy(tmp_path).settings == PasswordSettings(
        min_length=12,
        max_length=128,
        min_strength=3,
        require_digit=False,
        require_lower=False,
        require_upper=False,
        require_symbol=False,
    )


@pytest.mark.parametrize(
    "password", ["bleu-cactus9", "Tr0ub4dor&3x", "correct-horse-battery-staple", "tigre violon saphir"]
)
def test_strong_passwords_of_twelve_characters_or_more_are_accepted(tmp_path: Path, password: str) -> None:
    policy(tmp_path).check(password)


def test_all_lower_case_phrase_needs_no_composition_rule(tmp_path: Path) -> None:
    assert codes(policy(tmp_path), "bleu-cactus9") == []
    assert codes(policy(tmp_path), "tigre violon saphir") == []


@pytest.mark.parametrize("password", ["password1234", "soleil123456", "azertyuiop12", "1234567890123"])
def test_common_passwords_are_refused_as_common(tmp_path: Path, password: str) -> None:
    assert codes(policy(tmp_path), password) == ["common"]


def test_repetitions_are_refused_as_guessable(tmp_path: Path) -> None:
    assert codes(policy(tmp_path), "a" * 20) == ["guessable"]


def test_password_built_from_the_users_email_is_refused(tmp_path: Path) -> None:
    p = policy(tmp_path)
    assert codes(p, "marie.curie.67") == []  # fine for someone else
    assert codes(p, "marie.curie.67", user_inputs=["marie.curie@chu-lyon.fr"]) == ["personal"]
    assert codes(p, "MarieCurie2024!", user_inputs=["marie.curie@chu-lyon.fr"]) == ["personal"]


def test_user_inputs_match_without_accents(tmp_path: Path) -> None:
    assert codes(policy(tmp_path), "helene.ecole.42", user_inputs=["hélène.école@chu.fr"]) == ["personal"]


def test_short_password_is_refused_with_the_minimum_in_both_languages(tmp_path: Path) -> None:
    with pytest.raises(PasswordRejected) as info:
        policy(tmp_path).check("Tr0ub4dor&3")
    assert isinstance(info.value, BadRequest)
    assert [p.code for p in info.value.problems] == ["too_short"]
    assert str(info.value) == "password too short: use at least 12 characters (a phrase of several words works well)"
    assert info.value.message("fr") == (
        "mot de passe trop court : utilisez au moins 12 caractères (une phrase de plusieurs mots convient bien)"
    )
    assert info.value.message("fr-FR") == info.value.message("fr")
    assert info.value.message("de") == str(info.value)


def test_129_characters_are_refused_128_accepted(tmp_path: Path) -> None:
    p = policy(tmp_path)
    strong = "tigre violon saphir " * 7
    assert codes(p, strong[:128]) == []
    assert codes(p, strong[:129]) == ["too_long"]
    with pytest.raises(PasswordRejected, match="at most 128 characters"):
        p.check(strong[:129])


def test_max_length_is_configurable(tmp_path: Path) -> None:
    assert codes(policy(tmp_path, max_length=16), "tigre violon saphir") == ["too_long"]


# -- composition policy ----------------------------------------------------------------


def test_composition_policy_accepts_six_characters_with_digit_lower_upper(tmp_path: Path) -> None:
    policy(tmp_path, **HOSPITAL).check("Aa1bC2")


@pytest.mark.parametrize(
    ("password", "code", "en", "fr"),
    [
        ("AabbCc", "needs_digit", "password has no digit: add one (0-9)", "aucun chiffre : ajoutez-en un"),
        ("AA11BB", "needs_lower", "no lower-case letter: add one", "aucune lettre minuscule"),
        ("aa11bb", "needs_upper", "no upper-case letter: add one", "aucune lettre majuscule"),
    ],
)
def test_composition_policy_says_what_is_missing(tmp_path: Path, password: str, code: str, en: str, fr: str) -> None:
    with pytest.raises(PasswordRejected) as info:
        policy(tmp_path, **HOSPITAL).check(password)
    assert [p.code for p in info.value.problems] == [code]
    assert en in str(info.value)
    assert fr in info.value.message("fr")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    p = policy(tmp_path, **HOSPITAL, require_symbol=True)
    assert codes(p, "abc") == ["too_short", "needs_digit", "needs_upper", "needs_symbol"]
    with pytest.raises(PasswordRejected) as info:
        p.check("abc")
    assert str(info.value).count("; ") == 3


def test_symbol_is_anything_but_letters_and_digits(tmp_path: Path) -> None:
    p = policy(tmp_path, min_length=6, min_strength=0, require_symbol=True)
    assert codes(p, "abcdef") == ["needs_symbol"]
    assert codes(p, "abc def") == []
    assert codes(p, "abc-def") == []


def test_composition_counts_non_ascii_letters_and_digits(tmp_path: Path) -> None:
    assert codes(policy(tmp_path, **HOSPITAL), "Éléphant٣") == []  # Arabic-Indic digit three


# -- strength switch and Unicode ---------------------------------------------------------


def test_min_strength_zero_disables_the_estimator(tmp_path: Path) -> None:
    assert codes(policy(tmp_path, min_strength=0), "password1234") == []
    assert codes(policy(tmp_path, min_strength=0), "a" * 12) == []


def test_higher_min_strength_refuses_more(tmp_path: Path) -> None:
    assert codes(policy(tmp_path, min_strength=3), "bleu-cactus9") == []
    assert codes(policy(tmp_path, min_strength=4), "bleu-cactus9") != []


def test_length_is_counted_after_nfc(tmp_path: Path) -> None:
    p = policy(tmp_path, min_strength=0)
    composed = "ééééééééééé"  # 11 characters
    decomposed = unicodedata.normalize("NFD", composed)
    assert len(decomposed) == 22
    assert codes(p, decomposed) == ["too_short"]
    assert codes(p, decomposed + "e\u0301") == []  # 12 once composed
    assert codes(policy(tmp_path, min_strength=0, max_length=16), unicodedata.normalize("NFD", "é" * 16)) == []


def test_problem_texts_are_never_empty_and_never_carry_the_password(tmp_path: Path) -> None:
    p = policy(tmp_path, **{**HOSPITAL, "min_length": 12, "min_strength": 3, "require_symbol": True})
    for password in ["Zq9", "secretpassword", "x" * 200, "password1234"]:
        for problem in p.problems(password):
            assert isinstance(problem, Problem)
            assert problem.code and problem.fr and problem.en and problem.fr != problem.en
            assert password not in problem.fr and password not in problem.en


# -- cost -----------------------------------------------------------------------------


def test_estimator_sees_a_bounded_prefix_so_long_passwords_stay_fast(tmp_path: Path) -> None:
    p = policy(tmp_path, max_length=1024)
    slowest = 0.0
    for password in ["1990121319" * 100, "abcdefgh1!" * 100, "Kx9#mQ2$vL7@" * 80]:
        started = time.perf_counter()
        p.problems(password[:1024])
        slowest = max(slowest, time.perf_counter() - started)
    assert STRENGTH_PREFIX <= 100
    assert slowest < 0.5, f"a check took {slowest:.2f} s"


def test_concurrent_checks_with_different_user_inputs_do_not_mix(tmp_path: Path) -> None:
    """zxcvbn keeps user inputs in a module global: calls must not see each other's."""
    p = policy(tmp_path)
    errors: list[str] = []

    def run(user: str, other: str) -> None:
        for _ in range(20):
            if codes(p, f"{other}.67") != []:
                errors.append(f"{other} refused for {user}")
            if codes(p, f"{user}.67", user_inputs=[f"{user}@chu.fr"]) != ["personal"]:
                errors.append(f"{user} accepted")

    threads = [
        threading.Thread(target=run, args=("marie.curie", "louis.pasteur")),
        threading.Thread(target=run, args=("louis.pasteur", "marie.curie")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
