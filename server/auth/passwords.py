"""What a password chosen by a person must be: ``[passwords]`` as a policy.

By default (NIST SP 800-63B): 12 to 128 characters, no composition rules, and
no password that the zxcvbn estimator finds guessable (score below
``min_strength``): common passwords, dictionary words, names, dates, keyboard
walks, repetitions, and the user's own name or e-mail address.  A composition
policy (a digit, a lower-case and an upper-case letter, a symbol), as some
hospital portals impose, is switched on option by option; such a policy with
short passwords usually goes with ``min_strength = 0``.

Characters are counted after NFC normalisation, so "é" typed as one code
point or as "e" plus a combining accent counts once.

Every refusal is a list of :class:`Problem`\\ s, each with a stable ``code``
and its text in French and English; :class:`PasswordRejected` (a
:class:`~server.errors.BadRequest`) carries them, reads in English as a string
(the CLI, logs) and in the user's language through :meth:`PasswordRejected.message`
(the web UI).  No text ever contains the password.

zxcvbn is slow on long inputs (its matching grows faster than the square of
the length: ~50 ms at 72 characters, ~0.6 s at 200, seconds at 400), so it
sees only the first :data:`STRENGTH_PREFIX` characters: a password whose
beginning is strong is strong.  It also keeps the user inputs of a call in a
module-level dictionary, so calls are serialised by a lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zxcvbn import zxcvbn

from server.errors import BadRequest

if TYPE_CHECKING:
    from server.config import PasswordSettings

__all__ = ["STRENGTH_PREFIX", "PasswordPolicy", "PasswordRejected", "Problem"]

logger = logging.getLogger(__name__)

#: Characters of a password that zxcvbn sees (its own default limit).
STRENGTH_PREFIX = 72
_ZXCVBN_LOCK = threading.Lock()
_SEPARATORS = re.compile(r"[^\w]+|_")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing to change in a password: a stable ``code`` and what to do, in French and English."""

    code: str
    fr: str
    en: str

    def text(self, locale: str = "en") -> str:
        """The text in ``locale`` ("fr", "fr-FR", "en"...); English unless French is asked for."""
        return self.fr if locale.lower().startswith("fr") else self.en


class PasswordRejected(BadRequest):
    """The password breaks the policy; ``problems`` says what to change.

    ``str()`` is the English text (CLI, logs); :meth:`message` gives it in the
    user's language.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.message("en"))

    def message(self, locale: str = "en") -> str:
        return "; ".join(p.text(locale) for p in self.problems)


def _too_short(n: int) -> Problem:
    return Problem(
        "too_short",
        f"mot de passe trop court : utilisez au moins {n} caractères (une phrase de plusieurs mots convient bien)",
        f"password too short: use at least {n} characters (a phrase of several words works well)",
    )


def _too_long(n: int) -> Problem:
    return Problem(
        "too_long",
        f"mot de passe trop long : utilisez au plus {n} caractères",
        f"password too long: use at most {n} characters",
    )


_NEEDS_DIGIT = Problem(
    "needs_digit",
    "le mot de passe ne contient aucun chiffre : ajoutez-en un (0-9)",
    "password has no digit: add one (0-9)",
)
_NEEDS_LOWER = Problem(
    "needs_lower",
    "le mot de passe ne contient aucune lettre minuscule : ajoutez-en une",
    "password has no lower-case letter: add one",
)
_NEEDS_UPPER = Problem(
    "needs_upper",
    "le mot de passe ne contient aucune lettre majuscule : ajoutez-en une",
    "password has no upper-case letter: add one",
)
_NEEDS_SYMBOL = Problem(
    "needs_symbol",
    "le mot de passe ne contient aucun caractère autre qu'une lettre ou un chiffre : ajoutez-en un (par exemple - ! ?)",
    "password has no character other than letters and digits: add one (e.g. - ! ?)",
)
_COMMON = Problem(
    "common",
    "mot de passe trop courant : il figure dans les listes que les attaquants essaient en premier ; "
    "choisissez-en un autre, par exemple une phrase de plusieurs mots sans rapport entre eux",
    "password too common: it is on the lists attackers try first; "
    "choose another, e.g. a phrase of several unrelated words",
)
_PERSONAL = Problem(
    "personal",
    "mot de passe trop proche de votre nom ou de votre adresse e-mail : choisissez-en un qui ne les contient pas",
    "password too close to your name or e-mail address: choose one that does not contain them",
)
_GUESSABLE = Problem(
    "guessable",
    "mot de passe trop facile à deviner (mots courants, noms, dates, suites de touches ou répétitions) : "
    "allongez-le avec des mots sans rapport entre eux",
    "password too easy to guess (common words, names, dates, keyboard sequences or repetitions): "
    "lengthen it with unrelated words",
)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _expand_user_inputs(values: Iterable[str]) -> list[str]:
    """The words zxcvbn should treat as the user's own: each value, and for an
    e-mail address its local part, that part without separators, and every
    word of three letters or more; each also without accents."""
    words: list[str] = []
    for value in values:
        value = unicodedata.normalize("NFC", value).strip().lower()
        if not value:
            continue
        local = value.partition("@")[0]
        parts = [p for p in _SEPARATORS.split(value) if len(p) >= 3]
        for word in (value, local, _SEPARATORS.sub("", local), *parts):
            for variant in (word, _strip_accents(word)):
                if variant and variant not in words:
                    words.append(variant)
    return words


class PasswordPolicy:
    """The rules of ``[passwords]``; :meth:`check` before storing any password a person chose."""

    def __init__(self, settings: PasswordSettings) -> None:
        self.settings = settings

    def problems(self, password: str, *, user_inputs: Iterable[str] = ()) -> list[Problem]:
        """Everything to change in ``password`` (empty when acceptable).

        ``user_inputs`` are the user's name, e-mail address and the like, which
        the password should not be built from.
        """
        s = self.settings
        password = unicodedata.normalize("NFC", password)
        found: list[Problem] = []
        if len(password) < s.min_length:
            found.append(_too_short(s.min_length))
        if len(password) > s.max_length:
            found.append(_too_long(s.max_length))
        for required, present, problem in (
            (s.require_digit, any(c.isdigit() for c in password), _NEEDS_DIGIT),
            (s.require_lower, any(c.islower() for c in password), _NEEDS_LOWER),
            (s.require_upper, any(c.isupper() for c in password), _NEEDS_UPPER),
            (s.require_symbol, any(not c.isalnum() for c in password), _NEEDS_SYMBOL),
        ):
            if required and not present:
                found.append(problem)
        if s.min_strength > 0 and not found:
            weakness = self._weakness(password, _expand_user_inputs(user_inputs))
            if weakness is not None:
                found.append(weakness)
        return found

    def check(self, password: str, *, user_inputs: Iterable[str] = ()) -> None:
        """Raise :class:`PasswordRejected` (a BadRequest) saying what to change, unless acceptable."""
        found = self.problems(password, user_inputs=user_inputs)
        if found:
            raise PasswordRejected(found)

    def _weakness(self, password: str, user_inputs: list[str]) -> Problem | None:
        """The strength problem of a password of acceptable length and composition, if any."""
        started = time.perf_counter()
        with _ZXCVBN_LOCK:
            result: dict[str, Any] = zxcvbn(password[:STRENGTH_PREFIX], user_inputs=user_inputs)
        logger.debug("password strength estimated in %.1f ms", (time.perf_counter() - started) * 1000)
        if int(result["score"]) >= self.settings.min_strength:
            return None
        words: dict[str, int] = {}  # dictionary -> longest token matched from it
        for match in result["sequence"]:
            if match.get("pattern") == "dictionary":
                name = str(match.get("dictionary_name"))
                words[name] = max(words.get(name, 0), len(match["token"]))
        if "user_inputs" in words:
            return _PERSONAL
        if 2 * words.get("passwords", 0) >= min(len(password), STRENGTH_PREFIX):
            return _COMMON  # mostly one of the most used passwords
        return _GUESSABLE
