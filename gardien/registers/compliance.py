"""The compliance matrix: one rule per article, each reading the facts gathered from the capabilities.

A rule answers CONFORME, PARTIEL or ABSENT with its evidence (counts, dates, ids) and the action
that would change the answer. Nothing is declared: every answer follows from what Gardien holds,
and the rules are pure, so a state can be built and its verdict checked (tests/test_registers_matrix.py).
Texts come in English and French; the status words are the French ones auditors in FR/BE use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gardien.registers.schemas import (
    ActivityOut,
    AlertKind,
    BreachOut,
    ControllerActivity,
    DpiaOut,
    LegalBasis,
    ProcessorOut,
    RecipientKind,
    SecurityMeasure,
)
from gardien.registers.sources import RetentionPolicyFact

# How far back "recent" reaches: late answers and late notifications older than this no longer count.
LOOKBACK = timedelta(days=365)
# Art. 28(3) is breached by these; a review falling due soon is only a reminder.
PROCESSOR_FAULTS = frozenset(
    {AlertKind.DPA_MISSING, AlertKind.DPA_EXPIRED, AlertKind.CLAUSES_MISSING, AlertKind.TRANSFER_WITHOUT_SAFEGUARD}
)


class Status(StrEnum):
    CONFORME = "CONFORME"
    PARTIEL = "PARTIEL"
    ABSENT = "ABSENT"


@dataclass(frozen=True)
class Say:
    en: str
    fr: str

    def __call__(self, lang: str) -> str:
        return self.fr if lang == "fr" else self.en


@dataclass(frozen=True)
class ConsentFacts:
    """What the consent capability holds: notice versions, the banner's settings, choices recorded."""

    notice_versions: int
    current_version: int | None
    current_sha256: str | None
    non_essential_purposes: tuple[str, ...]
    purposes_without_services: tuple[str, ...]
    site_key: bool
    validity_months: int
    allowed_origins: int
    granted: int  # choices per purpose over the last year
    denied: int
    given_events: int  # events that granted something (CONSENT_GRANTED), last year
    withdrawn_events: int  # events that revoked something (CONSENT_REVOKED), last year


@dataclass(frozen=True)
class RightsFacts:
    """Requests answered (completed or rejected) over the last year, and those overdue now."""

    received: int
    answered_in_time: int
    answered_late: tuple[str, ...]
    overdue: tuple[str, ...]


@dataclass(frozen=True)
class NoticeFacts:
    version: int
    sha256: str
    published_at: datetime


@dataclass(frozen=True)
class Facts:
    now: datetime
    header: bool
    activities: Sequence[ActivityOut]
    processors: Sequence[ProcessorOut]
    breaches: Sequence[BreachOut]
    dpias: Sequence[DpiaOut]
    consent: ConsentFacts
    rights: RightsFacts
    notice: NoticeFacts | None
    # None: the retention capability is not installed or not plugged in.
    retention: Sequence[RetentionPolicyFact] | None = None
    controller: list[tuple[str, ControllerActivity]] = field(init=False)

    def __post_init__(self) -> None:
        own = [(a.id, a.record) for a in self.activities if isinstance(a.record, ControllerActivity)]
        object.__setattr__(self, "controller", own)


@dataclass(frozen=True)
class Verdict:
    status: Status
    evidence: dict[str, Any]
    finding: Say
    action: Say | None = None


@dataclass(frozen=True)
class Rule:
    article: str
    title: Say
    check: Callable[[Facts], Verdict]


def _has_retention(record: ControllerActivity) -> bool:
    return bool(record.retention or record.retention_policy or all(d.retention for d in record.data_categories))


def _sensitive(record: ControllerActivity) -> bool:
    return bool(record.special_categories or record.nir)


def _bases(facts: Facts) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, record in facts.controller:
        for purpose in record.purposes:
            counts[purpose.legal_basis.value] = counts.get(purpose.legal_basis.value, 0) + 1
    return counts


NO_ACTIVITY = Verdict(
    Status.ABSENT,
    {"controller_activities": 0},
    Say("No processing activity is recorded as controller.", "Aucune activité de traitement n'est enregistrée."),
    Say(
        "Record each processing activity (POST /api/v1/registers/activities).",
        "Enregistrer chaque activité de traitement (POST /api/v1/registers/activities).",
    ),
)


def storage_limitation(facts: Facts) -> Verdict:
    """Art. 5(1)(e): retention policies exist, each activity names one, and they run."""
    if not facts.retention:
        return Verdict(
            Status.ABSENT,
            {"retention_capability": facts.retention is not None, "policies": 0},
            Say("No retention policy.", "Aucune politique de conservation."),
            Say(
                "Define retention policies and link each processing activity to one (retention_policy).",
                "Définir des politiques de conservation et y rattacher chaque traitement (retention_policy).",
            ),
        )
    # An activity names its policy by id or by name.
    keys = {p.key for p in facts.retention} | {p.name for p in facts.retention if p.name}
    unlinked = [i for i, r in facts.controller if r.retention_policy is None]
    unknown = sorted({r.retention_policy for _, r in facts.controller if r.retention_policy} - keys)
    never_run = sorted(p.key for p in facts.retention if p.last_run_at is None)
    failed = sorted(p.key for p in facts.retention if p.last_run_ok is False)
    evidence = {
        "policies": len(facts.retention),
        "activities_without_policy": unlinked,
        "unknown_policy_keys": unknown,
        "policies_never_run": never_run,
        "policies_last_run_failed": failed,
        "last_run_at": max((p.last_run_at for p in facts.retention if p.last_run_at), default=None),
    }
    if unlinked or unknown or never_run or failed:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "Some activities have no retention policy, or some policies never ran or failed.",
                "Des traitements n'ont pas de politique de conservation, ou des politiques n'ont jamais "
                "tourné ou ont échoué.",
            ),
            Say(
                "Link every activity to an existing policy and run the failing or idle ones.",
                "Rattacher chaque traitement à une politique existante et exécuter celles en échec ou inactives.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say("Every activity is linked to a policy that runs.", "Chaque traitement suit une politique qui s'exécute."),
    )


def lawfulness(facts: Facts) -> Verdict:
    """Art. 6: every purpose has a legal basis; those relying on consent can collect it."""
    if not facts.controller:
        return NO_ACTIVITY
    bases = _bases(facts)
    evidence = {"purposes_by_legal_basis": bases, "consent_notice_versions": facts.consent.notice_versions}
    if bases.get(LegalBasis.CONSENT.value) and not facts.consent.notice_versions:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "Purposes rely on consent but no consent notice is published: consent cannot be collected.",
                "Des finalités reposent sur le consentement mais aucune notice de consentement n'est publiée.",
            ),
            Say(
                "Publish a consent notice (POST /api/v1/consent/notices) or change the legal basis.",
                "Publier une notice de consentement (POST /api/v1/consent/notices) ou revoir la base légale.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say("Every purpose names its legal basis.", "Chaque finalité indique sa base légale."),
    )


def consent(facts: Facts) -> Verdict:
    """Art. 7: consent is asked with a versioned notice and each choice is kept as proof."""
    c = facts.consent
    relies = bool(_bases(facts).get(LegalBasis.CONSENT.value)) or bool(c.non_essential_purposes)
    evidence = {
        "notice_versions": c.notice_versions,
        "current_version": c.current_version,
        "current_sha256": c.current_sha256,
        "choices_granted_last_year": c.granted,
        "choices_denied_last_year": c.denied,
        "consents_given_last_year": c.given_events,
        "consents_withdrawn_last_year": c.withdrawn_events,
    }
    if not c.notice_versions:
        if not relies:
            return Verdict(
                Status.CONFORME,
                evidence,
                Say("No purpose relies on consent.", "Aucune finalité ne repose sur le consentement."),
            )
        return Verdict(
            Status.ABSENT,
            evidence,
            Say(
                "Purposes rely on consent, but no notice version exists: no consent can be proven.",
                "Des finalités reposent sur le consentement, mais aucune version de notice n'existe : "
                "aucun consentement n'est prouvable.",
            ),
            Say(
                "Publish a consent notice and collect choices through it.",
                "Publier une notice et y recueillir les choix.",
            ),
        )
    if c.granted + c.denied == 0:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "A notice is published but no choice was recorded in the last year: there is no proof.",
                "Une notice est publiée mais aucun choix n'a été enregistré depuis un an : aucune preuve.",
            ),
            Say(
                "Record each choice through the banner or POST /api/v1/consent/records.",
                "Enregistrer chaque choix via le bandeau ou POST /api/v1/consent/records.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "Choices are recorded against hashed notice versions and can be withdrawn.",
            "Les choix sont enregistrés avec la version hachée de la notice et peuvent être retirés.",
        ),
    )


def rights(facts: Facts) -> Verdict:
    """Arts. 12–22: people are informed (the published notice) and their requests answered in time."""
    r = facts.rights
    answered = r.answered_in_time + len(r.answered_late)
    came_due = answered + len(r.overdue)
    evidence = {
        "requests_received_last_year": r.received,
        "answered_in_time": r.answered_in_time,
        "answered_late": list(r.answered_late),
        "share_answered_in_time": round(r.answered_in_time / answered, 4) if answered else None,
        "overdue": list(r.overdue),
        "privacy_notice_version": facts.notice.version if facts.notice else None,
        "privacy_notice_published_at": facts.notice.published_at if facts.notice else None,
    }
    if came_due and not r.answered_in_time:
        return Verdict(
            Status.ABSENT,
            evidence,
            Say("No request that came due was answered in time.", "Aucune demande échue n'a reçu de réponse à temps."),
            Say(
                "Answer the overdue requests now (Art. 12(3): one month).",
                "Répondre aux demandes en retard (art. 12.3 : un mois).",
            ),
        )
    if r.overdue or r.answered_late or facts.notice is None:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "Requests are overdue or were answered late, or no privacy notice is published (Art. 12(1), 13, 14).",
                "Des demandes sont en retard ou ont été traitées en retard, ou aucune politique de confidentialité "
                "n'est publiée (art. 12.1, 13, 14).",
            ),
            Say(
                "Answer the overdue requests; publish the privacy notice (POST /api/v1/registers/notices).",
                "Traiter les demandes en retard ; publier la politique de confidentialité "
                "(POST /api/v1/registers/notices).",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "The privacy notice is published and every request was answered in time.",
            "La politique de confidentialité est publiée et chaque demande a reçu une réponse à temps.",
        ),
    )


def by_design(facts: Facts) -> Verdict:
    """Art. 25: by default, access is restricted and data are kept no longer than a set period."""
    if not facts.controller:
        return NO_ACTIVITY
    lacking = [
        i
        for i, r in facts.controller
        if SecurityMeasure.ACCESS_CONTROL not in r.security_measures or not _has_retention(r)
    ]
    evidence = {
        "controller_activities": len(facts.controller),
        "without_access_control_or_retention": lacking,
        "consent_default": "non-essential purposes off until granted",
    }
    if len(lacking) == len(facts.controller):
        return Verdict(
            Status.ABSENT,
            evidence,
            Say(
                "No activity restricts access and sets a retention period.",
                "Aucun traitement ne restreint l'accès et ne fixe de durée de conservation.",
            ),
            Say(
                "For each activity, record access control and a retention period.",
                "Pour chaque traitement, mettre en place un contrôle d'accès et une durée de conservation.",
            ),
        )
    if lacking:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "Some activities lack access control or a retention period.",
                "Des traitements n'ont pas de contrôle d'accès ou de durée de conservation.",
            ),
            Say("Complete the activities listed.", "Compléter les traitements listés."),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "Every activity restricts access and limits retention.",
            "Chaque traitement restreint l'accès et limite la conservation.",
        ),
    )


def processors(facts: Facts) -> Verdict:
    """Art. 28: each processor works under a signed, current DPA with the Art. 28(3) clauses."""
    named = sorted(
        {
            recipient.name
            for _, r in facts.controller
            for recipient in r.recipients
            if recipient.kind is RecipientKind.PROCESSOR
        }
    )
    known = {p.record.name.casefold() for p in facts.processors}
    faulty = {p.id: sorted(a.value for a in p.alerts if a in PROCESSOR_FAULTS) for p in facts.processors}
    faulty = {k: v for k, v in faulty.items() if v}
    evidence = {
        "processors": len(facts.processors),
        "with_faults": faulty,
        "dpa_review_due": [p.id for p in facts.processors if AlertKind.DPA_REVIEW_DUE in p.alerts],
        "named_as_recipients_but_not_recorded": [n for n in named if n.casefold() not in known],
    }
    if not facts.processors:
        return Verdict(
            Status.ABSENT,
            evidence,
            Say("No processor is recorded.", "Aucun sous-traitant n'est enregistré."),
            Say(
                "Record every processor (hosting, e-mail, payment…) with its DPA (POST /api/v1/registers/processors).",
                "Enregistrer chaque sous-traitant (hébergement, e-mail, paiement…) avec son contrat "
                "(POST /api/v1/registers/processors).",
            ),
        )
    if faulty or evidence["named_as_recipients_but_not_recorded"]:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "A processor lacks a signed or current DPA, clauses or a transfer tool, or is not recorded.",
                "Un sous-traitant n'a pas de contrat signé ou à jour, de clauses ou d'outil de transfert, "
                "ou n'est pas enregistré.",
            ),
            Say(
                "Sign or renew the DPAs listed, tick the Art. 28(3) clauses, record the missing processors.",
                "Signer ou renouveler les contrats listés, cocher les clauses de l'art. 28.3, enregistrer les "
                "sous-traitants manquants.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "Every processor has a current DPA with its clauses.",
            "Chaque sous-traitant a un contrat à jour et complet.",
        ),
    )


def records(facts: Facts) -> Verdict:
    """Art. 30: the record exists, with its header, retention and security for each activity."""
    if not facts.controller:
        return NO_ACTIVITY
    incomplete = [
        i for i, r in facts.controller if not _has_retention(r) or not (r.security_measures or r.security_description)
    ]
    evidence = {
        "controller_activities": len(facts.controller),
        "processor_records": len(facts.activities) - len(facts.controller),
        "header": facts.header,
        "without_retention_or_security": incomplete,
        "last_update": max(a.updated_at for a in facts.activities),
    }
    if not facts.header or incomplete:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "The header (controller, DPO) is missing, or activities lack retention or security measures "
                "(Art. 30(1)(a), (f), (g)).",
                "L'en-tête (responsable, DPO) manque, ou des traitements n'indiquent pas leur durée de conservation "
                "ou leurs mesures de sécurité (art. 30.1 a, f, g).",
            ),
            Say("Complete the header and the activities listed.", "Compléter l'en-tête et les traitements listés."),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say("The record is complete.", "Le registre est complet."),
    )


def security(facts: Facts) -> Verdict:
    """Art. 32: measures are recorded, and sensitive processing is encrypted."""
    if not facts.controller:
        return NO_ACTIVITY
    bare = [i for i, r in facts.controller if not r.security_measures]
    unencrypted = [
        i for i, r in facts.controller if _sensitive(r) and SecurityMeasure.ENCRYPTION not in r.security_measures
    ]
    evidence = {
        "controller_activities": len(facts.controller),
        "without_measures": bare,
        "sensitive_without_encryption": unencrypted,
    }
    if len(bare) == len(facts.controller):
        return Verdict(
            Status.ABSENT,
            evidence,
            Say("No security measure is recorded.", "Aucune mesure de sécurité n'est enregistrée."),
            Say(
                "Record the measures of each activity (access control, traceability, backup, encryption…).",
                "Indiquer les mesures de chaque traitement (contrôle d'accès, traçabilité, sauvegarde, chiffrement…).",
            ),
        )
    if bare or unencrypted:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "Some activities record no measure, or process sensitive data without encryption.",
                "Des traitements n'ont aucune mesure, ou traitent des données sensibles sans chiffrement.",
            ),
            Say(
                "Record measures for the activities listed; encrypt sensitive data.",
                "Compléter les mesures des traitements listés ; chiffrer les données sensibles.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say("Every activity records its measures.", "Chaque traitement indique ses mesures."),
    )


def breaches(facts: Facts) -> Verdict:
    """Arts. 33–34: notifiable breaches are notified within 72 hours, people told when the risk is high."""
    since = facts.now - LOOKBACK
    overdue = [b.id for b in facts.breaches if b.clock.state == "overdue"]
    running = {b.id: b.clock.deadline for b in facts.breaches if b.clock.state == "running"}
    late = [b.id for b in facts.breaches if b.clock.state == "notified_late" and b.record.aware_at >= since]
    uninformed = [b.id for b in facts.breaches if b.communication_required and b.record.subjects_informed_at is None]
    evidence = {
        "breaches_recorded": len(facts.breaches),
        "notified_in_time": sum(b.clock.state == "notified_in_time" for b in facts.breaches),
        "not_requiring_notification": sum(b.clock.state == "not_required" for b in facts.breaches),
        "overdue": overdue,
        "running": running,
        "notified_late_last_year": late,
        "people_not_informed": uninformed,
    }
    if overdue:
        return Verdict(
            Status.ABSENT,
            evidence,
            Say(
                "A notifiable breach is more than 72 hours old and not notified.",
                "Une violation à notifier a plus de 72 heures et n'est pas notifiée.",
            ),
            Say(
                "Notify the authority now, with the reasons for the delay (Art. 33(1)).",
                "Notifier l'autorité immédiatement, avec les motifs du retard (art. 33.1).",
            ),
        )
    if running or late or uninformed:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "A notification is due, one was late in the last year, or people at high risk are not yet informed.",
                "Une notification est à faire, une a été tardive depuis un an, ou des personnes exposées à un "
                "risque élevé ne sont pas encore informées.",
            ),
            Say(
                "Notify before the deadlines shown; inform the people concerned (Art. 34).",
                "Notifier avant les échéances indiquées ; informer les personnes concernées (art. 34).",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "Every breach is documented and notified in time where required.",
            "Chaque violation est documentée et notifiée à temps lorsque c'est requis.",
        ),
    )


def impact_assessments(facts: Facts) -> Verdict:
    """Art. 35: sensitive processing has a validated DPIA; high residual risk goes to the authority (Art. 36)."""
    sensitive = [i for i, r in facts.controller if _sensitive(r)]
    covered = {d.record.activity_id for d in facts.dpias if d.record.validation.status == "validated"}
    evidence = {
        "sensitive_activities": sensitive,
        "dpias": len(facts.dpias),
        "sensitive_without_validated_dpia": [i for i in sensitive if i not in covered],
        "dpias_not_validated": [d.id for d in facts.dpias if d.record.validation.status != "validated"],
        "prior_consultation_required": [d.id for d in facts.dpias if d.prior_consultation],
    }
    if sensitive and not facts.dpias:
        return Verdict(
            Status.ABSENT,
            evidence,
            Say(
                "Sensitive data are processed and no DPIA exists.",
                "Des données sensibles sont traitées et aucune AIPD n'existe.",
            ),
            Say("Carry out a DPIA for the activities listed.", "Réaliser une AIPD pour les traitements listés."),
        )
    if (
        evidence["sensitive_without_validated_dpia"]
        or evidence["dpias_not_validated"]
        or evidence["prior_consultation_required"]
    ):
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "A sensitive activity lacks a validated DPIA, a DPIA is unfinished, or a residual risk calls for "
                "prior consultation (Art. 36).",
                "Un traitement sensible n'a pas d'AIPD validée, une AIPD est inachevée, ou un risque résiduel "
                "impose la consultation préalable (art. 36).",
            ),
            Say(
                "Validate the DPIAs listed and link them to their activity; consult the authority where required.",
                "Valider les AIPD listées et les rattacher à leur traitement ; consulter l'autorité si requis.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "Each sensitive activity has a validated DPIA.",
            "Chaque traitement sensible a une AIPD validée.",
        ),
    )


def eprivacy(facts: Facts) -> Verdict:
    """ePrivacy (Art. 5(3) of Dir. 2002/58, CNIL 2020 texts): non-essential trackers wait for consent."""
    c = facts.consent
    evidence = {
        "banner_site_key": c.site_key,
        "notice_version": c.current_version,
        "validity_months": c.validity_months,
        "allowed_origins": c.allowed_origins,
        "non_essential_purposes": list(c.non_essential_purposes),
        "purposes_without_services": list(c.purposes_without_services),
    }
    if not c.site_key or c.current_version is None:
        return Verdict(
            Status.ABSENT,
            evidence,
            Say(
                "The consent banner is not configured: no site key or no notice to show.",
                "Le bandeau de consentement n'est pas configuré : pas de clé de site ou pas de notice.",
            ),
            Say(
                "Configure consent (GET /api/v1/consent/settings), publish a notice, embed the banner.",
                "Configurer le consentement (GET /api/v1/consent/settings), publier une notice, intégrer le bandeau.",
            ),
        )
    if not c.allowed_origins or c.purposes_without_services:
        return Verdict(
            Status.PARTIEL,
            evidence,
            Say(
                "The banner accepts choices from any site, or a non-essential purpose names no service.",
                "Le bandeau accepte des choix de n'importe quel site, ou une finalité non essentielle ne nomme "
                "aucun service.",
            ),
            Say(
                "Set allowed_origins and list the services (and cookies) of each purpose.",
                "Renseigner allowed_origins et lister les services (et cookies) de chaque finalité.",
            ),
        )
    return Verdict(
        Status.CONFORME,
        evidence,
        Say(
            "The banner names its services and only the organisation's sites use it.",
            "Le bandeau nomme ses services et seuls les sites de l'organisme l'utilisent.",
        ),
    )


RULES: tuple[Rule, ...] = (
    Rule("5(1)(e)", Say("Storage limitation", "Limitation de la conservation"), storage_limitation),
    Rule("6", Say("Lawfulness of processing", "Licéité du traitement"), lawfulness),
    Rule("7", Say("Conditions for consent", "Conditions du consentement"), consent),
    Rule("12–22", Say("Information and data subjects' rights", "Information et droits des personnes"), rights),
    Rule(
        "25", Say("Data protection by design and by default", "Protection dès la conception et par défaut"), by_design
    ),
    Rule("28", Say("Processors", "Sous-traitants"), processors),
    Rule("30", Say("Records of processing activities", "Registre des activités de traitement"), records),
    Rule("32", Say("Security of processing", "Sécurité du traitement"), security),
    Rule("33", Say("Breach notification (and Art. 34)", "Notification des violations (et art. 34)"), breaches),
    Rule("35", Say("Data protection impact assessment", "Analyse d'impact (AIPD)"), impact_assessments),
    Rule("ePrivacy", Say("Cookies and trackers", "Cookies et traceurs"), eprivacy),
)


def matrix(facts: Facts, lang: str) -> list[dict[str, Any]]:
    """Every rule's verdict, in the Regulation's order, with its texts in `lang` (en or fr)."""
    rows = []
    for rule in RULES:
        verdict = rule.check(facts)
        rows.append(
            {
                "article": rule.article,
                "title": rule.title(lang),
                "status": verdict.status.value,
                "finding": verdict.finding(lang),
                "evidence": verdict.evidence,
                "action": verdict.action(lang) if verdict.action else None,
            }
        )
    return rows
