"""What the person reads: the identity-code e-mail and the Art. 12(4) information, in fr, nl and en.

Supervisory authorities are data: name per language and the authority's own web site, where each
publishes its complaint procedure.
"""

from __future__ import annotations

from gardien.rights.schemas import Art12_4, Locale

AUTHORITIES: dict[str, dict[str, str]] = {
    "FR": {
        "fr": "Commission nationale de l'informatique et des libertés (CNIL)",
        "nl": "Commission nationale de l'informatique et des libertés (CNIL)",
        "en": "Commission nationale de l'informatique et des libertés (CNIL)",
        "url": "https://www.cnil.fr",
    },
    "BE": {
        "fr": "Autorité de protection des données (APD)",
        "nl": "Gegevensbeschermingsautoriteit (GBA)",
        "en": "Belgian Data Protection Authority (APD/GBA)",
        "url": "https://www.dataprotectionauthority.be",
    },
    "NL": {
        "fr": "Autoriteit Persoonsgegevens (AP)",
        "nl": "Autoriteit Persoonsgegevens (AP)",
        "en": "Dutch Data Protection Authority (Autoriteit Persoonsgegevens)",
        "url": "https://autoriteitpersoonsgegevens.nl",
    },
    "LU": {
        "fr": "Commission nationale pour la protection des données (CNPD)",
        "nl": "Commission nationale pour la protection des données (CNPD)",
        "en": "National Commission for Data Protection (CNPD)",
        "url": "https://cnpd.public.lu",
    },
    "DE": {
        "fr": "Bundesbeauftragte für den Datenschutz und die Informationsfreiheit (BfDI)",
        "nl": "Bundesbeauftragte für den Datenschutz und die Informationsfreiheit (BfDI)",
        "en": "Federal Commissioner for Data Protection and Freedom of Information (BfDI)",
        "url": "https://www.bfdi.bund.de",
    },
}

_COMPLAINT = {
    "fr": "Vous pouvez introduire une réclamation auprès de {authority} ({url}).",
    "nl": "U kunt een klacht indienen bij de {authority} ({url}).",
    "en": "You may lodge a complaint with the {authority} ({url}).",
}
_JUDICIAL = {
    "fr": "Vous pouvez aussi former un recours juridictionnel devant les tribunaux compétents (article 79 du RGPD).",
    "nl": "U kunt ook beroep instellen bij de bevoegde rechter (artikel 79 AVG).",
    "en": "You may also seek a judicial remedy before the competent courts (Article 79 GDPR).",
}
_CODE_SUBJECT = {
    "fr": "Votre code de vérification : {code}",
    "nl": "Uw verificatiecode: {code}",
    "en": "Your verification code: {code}",
}
_CODE_BODY = {
    "fr": (
        "Bonjour,\n\nPour confirmer votre demande relative à vos données personnelles auprès de {org}, "
        "saisissez ce code : {code}\n\nIl est valable {minutes} minutes. Si vous n'êtes pas à l'origine de "
        "cette demande, ignorez ce message.\n"
    ),
    "nl": (
        "Beste,\n\nOm uw verzoek over uw persoonsgegevens bij {org} te bevestigen, voert u deze code in: "
        "{code}\n\nDe code is {minutes} minuten geldig. Hebt u dit verzoek niet gedaan, negeer dan dit bericht.\n"
    ),
    "en": (
        "Hello,\n\nTo confirm your request about your personal data at {org}, enter this code: {code}\n\n"
        "It is valid for {minutes} minutes. If you did not make this request, ignore this message.\n"
    ),
}


def art12_4(country: str, locale: Locale, reasons: str) -> Art12_4:
    authority = AUTHORITIES[country]
    return Art12_4(
        reasons=reasons,
        authority=authority[locale],
        authority_url=authority["url"],
        complaint=_COMPLAINT[locale].format(authority=authority[locale], url=authority["url"]),
        judicial_remedy=_JUDICIAL[locale],
    )


_FOLLOW = {
    "fr": "Suivez votre demande et téléchargez le résultat ici : {link}\n",
    "nl": "Volg uw verzoek en download het resultaat hier: {link}\n",
    "en": "Follow your request and download the result here: {link}\n",
}


def code_email(
    locale: Locale, organisation: str, code: str, minutes: int, follow_link: str | None = None
) -> tuple[str, str]:
    """(subject, body) of the identity-code e-mail; with the link to the request's page, if given."""
    body = _CODE_BODY[locale].format(org=organisation, code=code, minutes=minutes)
    if follow_link:
        body += "\n" + _FOLLOW[locale].format(link=follow_link)
    return _CODE_SUBJECT[locale].format(code=code), body


_EXTENSION_SUBJECT = {
    "fr": "Votre demande auprès de {org} : délai prolongé",
    "nl": "Uw verzoek bij {org}: termijn verlengd",
    "en": "Your request to {org}: deadline extended",
}
_EXTENSION_BODY = {
    "fr": (
        "Bonjour,\n\nNous avons besoin de plus de temps pour répondre à votre demande (référence {ref}). "
        "Conformément à l'article 12(3) du RGPD, le délai est prolongé de deux mois : nous répondrons au plus "
        "tard le {due}.\n\nMotif : {reason}\n"
    ),
    "nl": (
        "Beste,\n\nWe hebben meer tijd nodig om uw verzoek (referentie {ref}) te beantwoorden. Overeenkomstig "
        "artikel 12(3) AVG wordt de termijn met twee maanden verlengd: we antwoorden uiterlijk op {due}.\n\n"
        "Reden: {reason}\n"
    ),
    "en": (
        "Hello,\n\nWe need more time to answer your request (reference {ref}). Under Article 12(3) GDPR the "
        "deadline is extended by two months: we will answer by {due} at the latest.\n\nReason: {reason}\n"
    ),
}
_REJECTION_SUBJECT = {
    "fr": "Votre demande auprès de {org} : pas de suite donnée",
    "nl": "Uw verzoek bij {org}: geen gevolg gegeven",
    "en": "Your request to {org}: no action taken",
}
_REJECTION_BODY = {
    "fr": "Bonjour,\n\nNous ne donnons pas suite à votre demande (référence {ref}), pour ces motifs :\n{reasons}\n",
    "nl": "Beste,\n\nWe geven geen gevolg aan uw verzoek (referentie {ref}), om deze redenen:\n{reasons}\n",
    "en": "Hello,\n\nWe are not acting on your request (reference {ref}), for these reasons:\n{reasons}\n",
}


def extension_email(locale: Locale, organisation: str, ref: str, due: str, reason: str) -> tuple[str, str]:
    """(subject, body) telling the person of the extension and its reasons (Art. 12(3))."""
    body = _EXTENSION_BODY[locale].format(ref=ref, due=due, reason=reason)
    return _EXTENSION_SUBJECT[locale].format(org=organisation), body


def rejection_email(locale: Locale, organisation: str, ref: str, notice: Art12_4) -> tuple[str, str]:
    """(subject, body) with the Art. 12(4) information: reasons, complaint, judicial remedy."""
    body = _REJECTION_BODY[locale].format(ref=ref, reasons=notice.reasons)
    body += f"\n{notice.complaint}\n{notice.judicial_remedy}\n"
    return _REJECTION_SUBJECT[locale].format(org=organisation), body
