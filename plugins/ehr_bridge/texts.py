"""The bridge's words for people, in French and English: the alert e-mails and the status page.

A plugin's texts are its own (the core's catalogue does not know them);
they are few, so they live here as plain tables rather than a gettext
domain.  They name EHRs, statuses and document ids, never a patient.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AlertTexts", "alert_texts", "page_texts", "reason_text"]

_PLUGIN_NAME = {"fr": "passerelle vers le dossier patient (DPI)", "en": "bridge to the EHR"}

_PROBLEMS = {
    "auth": {
        "fr": "Le DPI « {ehr} » refuse les identifiants de MedDAV (HTTP {status}).",
        "en": 'The EHR "{ehr}" refuses the credentials of MedDAV (HTTP {status}).',
    },
    "host": {
        "fr": "L'adresse du DPI « {ehr} » est introuvable : son nom de serveur ne répond pas.",
        "en": 'The address of the EHR "{ehr}" cannot be found: its host name does not resolve.',
    },
    "tls": {
        "fr": "La connexion sécurisée (TLS) avec le DPI « {ehr} » échoue : son certificat n'est pas reconnu, "
        "ou le sien refuse celui de MedDAV.",
        "en": 'The secure (TLS) connection with the EHR "{ehr}" fails: its certificate is not trusted, '
        "or it refuses the certificate of MedDAV.",
    },
    "rejected": {
        "fr": "Le DPI « {ehr} » refuse les documents que MedDAV lui envoie (HTTP {status}).",
        "en": 'The EHR "{ehr}" refuses the documents MedDAV sends it (HTTP {status}).',
    },
}

_ADVICE = {
    "auth": {
        "fr": "Renouvelez le jeton d'accès (token_file) ou le certificat client dans la configuration de MedDAV.",
        "en": "Renew the access token (token_file) or the client certificate in the configuration of MedDAV.",
    },
    "host": {
        "fr": "Vérifiez l'adresse (url) du DPI dans la configuration de MedDAV.",
        "en": "Check the EHR's address (url) in the configuration of MedDAV.",
    },
    "tls": {
        "fr": "Vérifiez le certificat de l'autorité (ca_file) et le certificat client dans la configuration de MedDAV.",
        "en": "Check the certificate authority (ca_file) and the client certificate in the configuration of MedDAV.",
    },
    "rejected": {
        "fr": "Vérifiez l'adresse (url) du DPI et l'identification des patients ; l'éditeur du DPI peut dire "
        "pourquoi il refuse.",
        "en": "Check the EHR's address (url) and how patients are identified; the EHR's vendor can tell why it "
        "refuses.",
    },
}

_KEEP = {
    "fr": "Les documents ne sont pas perdus : ils attendent dans MedDAV et partiront dès que le problème sera "
    "corrigé. Vous ne recevrez pas d'autre message pour ce problème avant une heure.",
    "en": "The documents are not lost: they wait in MedDAV and will be sent once the problem is fixed. "
    "You will not get another message about this problem within the hour.",
}


@dataclass(frozen=True)
class AlertTexts:
    plugin_name: str
    problem: str
    advice: str


def _lang(locale: str) -> str:
    return "fr" if locale.lower().startswith("fr") else "en"


def alert_texts(kind: str, ehr: str, status: int | None, locale: str) -> AlertTexts:
    """What the ``plugin_alert`` e-mail says of a configuration problem, in the recipient's language."""
    lang = _lang(locale)
    problem = _PROBLEMS[kind][lang].format(ehr=ehr, status=status if status is not None else "—")
    advice = f"{_ADVICE[kind][lang]} {_KEEP[lang]}"
    return AlertTexts(_PLUGIN_NAME[lang], problem, advice)


_REASONS = {
    "outside": {
        "fr": "directement dans le dossier du flux : rangez-le dans le dossier d'un patient",
        "en": "directly in the feed's folder: move it into a patient's folder",
    },
    "no-patient": {
        "fr": "le dossier du patient n'a pas d'identifiant",
        "en": "the patient's folder has no identifier",
    },
    "too-large": {"fr": "trop volumineux (max_size_mib)", "en": "too large (max_size_mib)"},
}


def reason_text(reason: str, locale: str) -> str:
    """Why a document was not sent, in words."""
    return _REASONS.get(reason, {}).get(_lang(locale), reason)


_PAGE = {
    "title": {"fr": "Passerelle DPI : état de la synchronisation", "en": "EHR bridge: synchronisation status"},
    "intro": {
        "fr": "Les documents déposés dans les dossiers ci-dessous sont envoyés au dossier patient informatisé (DPI). "
        "Chaque envoi est répété jusqu'à réussir, sans jamais créer de doublon.",
        "en": "Documents written in the folders below are sent to the electronic health record (EHR). "
        "Each send is repeated until it succeeds, never creating a duplicate.",
    },
    "ehr": {"fr": "DPI", "en": "EHR"},
    "address": {"fr": "Adresse", "en": "Address"},
    "feeds": {"fr": "Dossiers envoyés", "en": "Folders sent"},
    "patient_from_property": {"fr": "patient : propriété {prop}", "en": "patient: property {prop}"},
    "patient_from_name": {"fr": "patient : nom du dossier", "en": "patient: folder name"},
    "folder_missing": {"fr": "dossier introuvable", "en": "folder not found"},
    "sent": {"fr": "Envoyés", "en": "Sent"},
    "already": {"fr": "Déjà présents dans le DPI", "en": "Already in the EHR"},
    "last_sent": {"fr": "Dernier envoi réussi", "en": "Last successful send"},
    "never": {"fr": "jamais", "en": "never"},
    "problems": {"fr": "À corriger", "en": "To fix"},
    "no_problem": {"fr": "Aucun problème de configuration.", "en": "No configuration problem."},
    "errors": {"fr": "Dernières erreurs", "en": "Last errors"},
    "no_error": {"fr": "Aucune erreur.", "en": "No error."},
    "skipped": {"fr": "Documents non envoyés", "en": "Documents not sent"},
    "when": {"fr": "Quand (Paris)", "en": "When (Paris)"},
    "kind": {"fr": "Type", "en": "Kind"},
    "message": {"fr": "Message", "en": "Message"},
    "document": {"fr": "Document n°", "en": "Document no."},
    "reason": {"fr": "Raison", "en": "Reason"},
    "sync": {"fr": "Synchronisations", "en": "Synchronisations"},
    "recent": {"fr": "Changements récents (toutes les 30 minutes)", "en": "Recent changes (every 30 minutes)"},
    "nightly": {"fr": "Rapprochement complet (chaque nuit)", "en": "Full reconciliation (every night)"},
    "last_run": {"fr": "Dernière", "en": "Last"},
    "next_run": {"fr": "Prochaine", "en": "Next"},
    "scanned": {"fr": "documents vérifiés", "en": "documents checked"},
    "resent": {"fr": "renvoyés", "en": "sent again"},
    "jobs": {"fr": "Envois en file d'attente", "en": "Sends queued"},
    "waiting": {"fr": "en attente", "en": "waiting"},
    "dead": {"fr": "abandonnés (à relancer)", "en": "dead (to retry)"},
    "jobs_link": {"fr": "Relancer depuis la page des tâches", "en": "Retry from the jobs page"},
    "not_yet": {"fr": "pas encore", "en": "not yet"},
    "kind_auth": {"fr": "identifiants refusés", "en": "credentials refused"},
    "kind_host": {"fr": "adresse introuvable", "en": "unknown host"},
    "kind_tls": {"fr": "TLS", "en": "TLS"},
    "kind_rejected": {"fr": "refus du DPI", "en": "refused by the EHR"},
    "kind_transient": {"fr": "passagère (réessayée)", "en": "transient (retried)"},
}


def page_texts(locale: str) -> dict[str, str]:
    """Every text of the status page, in one language."""
    lang = _lang(locale)
    return {key: texts[lang] for key, texts in _PAGE.items()}
