"""Register records as a DPO would type them, for the registers' tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def settings() -> dict[str, Any]:
    return {
        "controller": {
            "name": "Les Ogres de Barback SARL",
            "address": "12 rue des Arts, 75011 Paris",
            "email": "contact@ogres.example",
        },
        "representative": {"name": "Émilie Dupont", "email": "gerance@ogres.example"},
        "dpo": {"name": "Karim Benali", "email": "dpo@ogres.example", "phone": "+33 1 23 45 67 89"},
        "authority": "cnil",
    }


def controller_activity(name: str = "Billetterie en ligne") -> dict[str, Any]:
    return {
        "role": "controller",
        "name": name,
        "reference": "T-001",
        "purposes": [
            {"name": "Vente de billets", "legal_basis": "contract"},
            {
                "name": "Lutte contre la fraude",
                "legal_basis": "legitimate_interests",
                "legitimate_interest": "éviter les impayés",
            },
        ],
        "subject_categories": ["clients", "prospects"],
        "data_categories": [
            {"category": "identity", "description": "nom, prénom, e-mail", "retention": "3 ans après le dernier achat"},
            {"category": "economic_financial", "description": "moyen de paiement", "retention": "13 mois"},
        ],
        "special_categories": ["health"],
        "nir": False,
        "recipients": [
            {"name": "Service comptabilité", "kind": "internal"},
            {"name": "Stripe", "kind": "processor", "country": "IE"},
        ],
        "transfers": [
            {"recipient": "Mailjet Inc.", "country": "US", "safeguard": "dpf", "documentation": "DPA annexe 3"}
        ],
        "retention": "voir par catégorie",
        "security_measures": ["access_control", "traceability", "encryption"],
        "security_description": "TLS, chiffrement au repos, journalisation",
    }


def processor_activity() -> dict[str, Any]:
    return {
        "role": "processor",
        "name": "Hébergement des billetteries partenaires",
        "controllers": [{"controller": {"name": "Festival des Ogres", "email": "rgpd@festival.example"}}],
        "processing_categories": ["hébergement", "sauvegarde"],
        "security_measures": ["backup", "encryption"],
    }


def processor(**overrides: Any) -> dict[str, Any]:
    today = date.today()
    body: dict[str, Any] = {
        "name": "Mailjet",
        "country": "FR",
        "services": ["e-mails transactionnels"],
        "data_categories": ["identity"],
        "subject_categories": ["clients"],
        "locations": [{"country": "FR", "transfer_tool": "eea"}, {"country": "US", "transfer_tool": "dpf"}],
        "dpa": {
            "signed_on": (today - timedelta(days=400)).isoformat(),
            "review_on": (today + timedelta(days=200)).isoformat(),
        },
        "clauses": {
            "a_instructions": True,
            "b_confidentiality": True,
            "c_security": True,
            "d_sub_processing": True,
            "e_data_subject_rights": True,
            "f_assistance_32_36": True,
            "g_deletion_or_return": True,
            "h_audits": True,
        },
        "sub_processors": [{"name": "AWS", "country": "DE", "service": "hosting", "authorisation": "general"}],
        "breach_notice_hours": 24,
    }
    body.update(overrides)
    return body


def breach(aware_at: datetime, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Export CSV des clients envoyé au mauvais destinataire",
        "description": "Un export de la base clients a été envoyé par e-mail à un prestataire non habilité.",
        "aware_at": iso(aware_at),
        "nature": ["confidentiality"],
        "circumstances": "erreur d'envoi",
        "subject_categories": ["clients"],
        "subjects_approx": 1200,
        "record_categories": ["identité", "coordonnées"],
        "records_approx": 1200,
        "consequences": "Risque d'hameçonnage ciblé.",
        "measures_taken": "Le destinataire a confirmé la suppression.",
        "measures_proposed": "Chiffrement des exports.",
        "risk": "high",
    }
    body.update(overrides)
    return body


def dpia(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Vidéosurveillance du foyer",
        "context": {"processing": "Caméras dans le hall", "data": "images"},
        "principles": {"purposes": "sécurité des biens", "retention": "30 jours"},
        "measures": [{"title": "Chiffrement", "content": "disques chiffrés"}],
        "risks": {
            "illegitimate_access": {"impacts": ["atteinte à la vie privée"], "severity": 3, "likelihood": 2},
            "data_disappearance": {"severity": 1, "likelihood": 1},
        },
        "action_plan": [{"reference": "3.2", "action": "Restreindre l'accès aux images", "status": "planned"}],
        "validation": {"author": "Karim Benali", "status": "draft"},
    }
    body.update(overrides)
    return body
