"""What the privacy center says, in fr, nl and en."""

from __future__ import annotations

from typing import Literal

Lang = Literal["fr", "nl", "en"]
LANGS: tuple[Lang, ...] = ("fr", "nl", "en")
LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English"}

TEXTS: dict[str, dict[str, str]] = {
    "title": {"fr": "Vos données personnelles", "nl": "Uw persoonsgegevens", "en": "Your personal data"},
    "intro": {
        "fr": "Demandez à {org} une copie de vos données, leur correction, leur effacement, la limitation de "
        "leur traitement, leur portabilité, ou opposez-vous à leur traitement (RGPD, articles 15 à 21).",
        "nl": "Vraag {org} om een kopie van uw gegevens, om correctie, wissing, beperking van de verwerking of "
        "overdraagbaarheid, of maak bezwaar tegen de verwerking (AVG, artikelen 15 tot 21).",
        "en": "Ask {org} for a copy of your data, its correction, erasure, restricted processing or portability, "
        "or object to its processing (GDPR Articles 15 to 21).",
    },
    "languages": {"fr": "Langue", "nl": "Taal", "en": "Language"},
    "skip": {"fr": "Aller au contenu", "nl": "Naar de inhoud", "en": "Skip to content"},
    "type_legend": {"fr": "Que demandez-vous ?", "nl": "Wat vraagt u?", "en": "What do you ask for?"},
    "email": {"fr": "Votre adresse e-mail", "nl": "Uw e-mailadres", "en": "Your e-mail address"},
    "email_hint": {
        "fr": "Celle que vous utilisez chez {org}. Nous y envoyons un code pour vérifier que c'est bien vous.",
        "nl": "Het adres dat u bij {org} gebruikt. We sturen er een code naartoe om te controleren dat u het bent.",
        "en": "The one you use with {org}. We send a code to it to check that it is you.",
    },
    "rectify_legend": {
        "fr": "Pour une rectification : ce qu'il faut corriger",
        "nl": "Voor een rectificatie: wat moet worden gecorrigeerd",
        "en": "For a rectification: what to correct",
    },
    "field": {"fr": "Donnée {n}", "nl": "Gegeven {n}", "en": "Data item {n}"},
    "value": {"fr": "Valeur correcte {n}", "nl": "Juiste waarde {n}", "en": "Correct value {n}"},
    "choose": {"fr": "— choisir —", "nl": "— kiezen —", "en": "— choose —"},
    "objection_legend": {
        "fr": "Pour une opposition",
        "nl": "Voor een bezwaar",
        "en": "For an objection",
    },
    "direct_marketing": {
        "fr": "Je m'oppose à la prospection commerciale (toujours accepté)",
        "nl": "Ik maak bezwaar tegen direct marketing (altijd aanvaard)",
        "en": "I object to direct marketing (always granted)",
    },
    "objection_other": {
        "fr": "Sans cette case, l'opposition vise tout traitement fondé sur l'intérêt légitime ; "
        "expliquez vos raisons ci-dessous.",
        "nl": "Zonder dit vakje geldt het bezwaar voor elke verwerking op grond van gerechtvaardigd belang; "
        "leg uw redenen hieronder uit.",
        "en": "Without this box, the objection covers any processing based on legitimate interests; "
        "give your reasons below.",
    },
    "note": {"fr": "Précisions (facultatif)", "nl": "Toelichting (optioneel)", "en": "Details (optional)"},
    "submit": {"fr": "Envoyer la demande", "nl": "Verzoek versturen", "en": "Send the request"},
    "errors_title": {
        "fr": "La demande n'a pas été envoyée :",
        "nl": "Het verzoek is niet verstuurd:",
        "en": "The request was not sent:",
    },
    "required": {"fr": "Ce champ est obligatoire.", "nl": "Dit veld is verplicht.", "en": "This field is required."},
    "bad_email": {
        "fr": "Ce n'est pas une adresse e-mail valide.",
        "nl": "Dit is geen geldig e-mailadres.",
        "en": "This is not a valid e-mail address.",
    },
    "too_long": {"fr": "Ce texte est trop long.", "nl": "Deze tekst is te lang.", "en": "This text is too long."},
    "changes_needed": {
        "fr": "Indiquez au moins une donnée à corriger et sa valeur correcte.",
        "nl": "Geef minstens één gegeven en de juiste waarde op.",
        "en": "Give at least one data item and its correct value.",
    },
    "too_many": {
        "fr": "Plusieurs demandes sont déjà en cours pour cette adresse ; suivez-les avec le lien reçu par e-mail.",
        "nl": "Er lopen al meerdere verzoeken voor dit adres; volg ze via de link in uw e-mail.",
        "en": "Several requests are already open for this address; follow them with the link in your e-mail.",
    },
    "request_title": {"fr": "Votre demande", "nl": "Uw verzoek", "en": "Your request"},
    "reference": {"fr": "Référence", "nl": "Referentie", "en": "Reference"},
    "status": {"fr": "État", "nl": "Status", "en": "Status"},
    "received_on": {"fr": "Reçue le", "nl": "Ontvangen op", "en": "Received on"},
    "due_on": {"fr": "Réponse au plus tard le", "nl": "Antwoord uiterlijk op", "en": "Answer at the latest on"},
    "extended": {
        "fr": "Délai prolongé de deux mois (art. 12(3)) : {reason}",
        "nl": "Termijn met twee maanden verlengd (art. 12(3)): {reason}",
        "en": "Deadline extended by two months (Art. 12(3)): {reason}",
    },
    "paused": {
        "fr": "Le délai court à partir de la vérification de votre adresse.",
        "nl": "De termijn loopt vanaf de controle van uw adres.",
        "en": "The deadline runs from the check of your address.",
    },
    "code_sent": {
        "fr": "Nous avons envoyé un code à 6 chiffres à {to}.",
        "nl": "We hebben een code van 6 cijfers gestuurd naar {to}.",
        "en": "We sent a 6-digit code to {to}.",
    },
    "verify_title": {
        "fr": "Confirmez que c'est bien vous",
        "nl": "Bevestig dat u het bent",
        "en": "Confirm that it is you",
    },
    "code": {"fr": "Code reçu par e-mail", "nl": "Code ontvangen per e-mail", "en": "Code received by e-mail"},
    "code_hint": {
        "fr": "6 chiffres, valable {minutes} minutes.",
        "nl": "6 cijfers, {minutes} minuten geldig.",
        "en": "6 digits, valid for {minutes} minutes.",
    },
    "code_format": {
        "fr": "Le code compte 6 chiffres.",
        "nl": "De code bestaat uit 6 cijfers.",
        "en": "The code has 6 digits.",
    },
    "confirm": {"fr": "Confirmer", "nl": "Bevestigen", "en": "Confirm"},
    "wrong_code": {
        "fr": "Ce code n'est pas le bon ; encore {left} essai(s).",
        "nl": "Deze code klopt niet; nog {left} poging(en).",
        "en": "This code is not the right one; {left} attempt(s) left.",
    },
    "code_spent": {
        "fr": "Ce code a expiré ou trop d'essais ont échoué : demandez un nouveau code.",
        "nl": "Deze code is verlopen of er waren te veel foute pogingen: vraag een nieuwe code.",
        "en": "This code has expired or too many tries failed: ask for a new code.",
    },
    "code_limit": {
        "fr": "Trop de codes ont déjà été envoyés pour cette demande ; contactez-nous.",
        "nl": "Er zijn al te veel codes verstuurd voor dit verzoek; neem contact met ons op.",
        "en": "Too many codes were already sent for this request; please contact us.",
    },
    "resend": {"fr": "Envoyer un nouveau code", "nl": "Nieuwe code sturen", "en": "Send a new code"},
    "mail_down": {
        "fr": "Nous n'avons pas pu envoyer l'e-mail. Réessayez plus tard.",
        "nl": "We konden de e-mail niet versturen. Probeer het later opnieuw.",
        "en": "We could not send the e-mail. Please try again later.",
    },
    "working": {
        "fr": "Votre identité est vérifiée ; nous traitons votre demande.",
        "nl": "Uw identiteit is gecontroleerd; we behandelen uw verzoek.",
        "en": "Your identity is verified; we are handling your request.",
    },
    "refresh": {"fr": "Actualiser", "nl": "Vernieuwen", "en": "Refresh"},
    "delayed": {
        "fr": "Le traitement a rencontré un problème ; notre équipe en est informée et le reprendra.",
        "nl": "De behandeling liep op een probleem; ons team is op de hoogte en hervat ze.",
        "en": "Handling ran into a problem; our team knows and will resume it.",
    },
    "download": {
        "fr": "Télécharger vos données (ZIP, {size})",
        "nl": "Uw gegevens downloaden (ZIP, {size})",
        "en": "Download your data (ZIP, {size})",
    },
    "download_until": {
        "fr": "Ce lien est valable jusqu'au {until} ; le fichier est supprimé le {deleted}.",
        "nl": "Deze link is geldig tot {until}; het bestand wordt op {deleted} verwijderd.",
        "en": "This link is valid until {until}; the file is deleted on {deleted}.",
    },
    "package_gone": {
        "fr": "Le fichier de vos données a expiré et a été supprimé. Vous pouvez faire une nouvelle demande.",
        "nl": "Het bestand met uw gegevens is verlopen en verwijderd. U kunt een nieuw verzoek indienen.",
        "en": "The file with your data has expired and was deleted. You may make a new request.",
    },
    "done_erasure": {
        "fr": "Vos données ont été effacées.",
        "nl": "Uw gegevens zijn gewist.",
        "en": "Your data was erased.",
    },
    "held": {
        "fr": "Certaines données sont conservées parce que la loi l'impose (art. 17(3)(b)) :",
        "nl": "Sommige gegevens worden bewaard omdat de wet dat oplegt (art. 17(3)(b)):",
        "en": "Some data is kept because the law requires it (Art. 17(3)(b)):",
    },
    "held_until": {"fr": "jusqu'au {until}", "nl": "tot {until}", "en": "until {until}"},
    "done_rectification": {
        "fr": "Vos données ont été corrigées.",
        "nl": "Uw gegevens zijn gecorrigeerd.",
        "en": "Your data was corrected.",
    },
    "done_restriction": {
        "fr": "Le traitement de vos données est limité.",
        "nl": "De verwerking van uw gegevens is beperkt.",
        "en": "The processing of your data is restricted.",
    },
    "done_objection": {
        "fr": "Votre opposition est appliquée.",
        "nl": "Uw bezwaar wordt toegepast.",
        "en": "Your objection is applied.",
    },
    "recipients": {
        "fr": "Nous en informons aussi : {names}.",
        "nl": "We brengen ook op de hoogte: {names}.",
        "en": "We also inform: {names}.",
    },
    "rejected": {
        "fr": "Nous ne donnons pas suite à votre demande.",
        "nl": "We geven geen gevolg aan uw verzoek.",
        "en": "We are not acting on your request.",
    },
    "reasons": {"fr": "Motifs", "nl": "Redenen", "en": "Reasons"},
    "cancelled": {
        "fr": "Cette demande a été annulée.",
        "nl": "Dit verzoek is geannuleerd.",
        "en": "This request was cancelled.",
    },
    "new_request": {"fr": "Faire une autre demande", "nl": "Een ander verzoek indienen", "en": "Make another request"},
    "not_found": {
        "fr": "Cette page n'existe pas.",
        "nl": "Deze pagina bestaat niet.",
        "en": "This page does not exist.",
    },
    "bad_link": {
        "fr": "Ce lien n'est pas valide. Utilisez le lien reçu par e-mail, sans le modifier.",
        "nl": "Deze link is ongeldig. Gebruik de link uit uw e-mail, ongewijzigd.",
        "en": "This link is not valid. Use the link from your e-mail, unchanged.",
    },
    "expired_link": {
        "fr": "Ce lien de téléchargement a expiré. Rouvrez la page de votre demande pour en obtenir un nouveau.",
        "nl": "Deze downloadlink is verlopen. Open de pagina van uw verzoek opnieuw voor een nieuwe link.",
        "en": "This download link has expired. Open your request's page again to get a new one.",
    },
    "unavailable": {
        "fr": "Le service est momentanément indisponible. Réessayez plus tard.",
        "nl": "De dienst is tijdelijk niet beschikbaar. Probeer het later opnieuw.",
        "en": "The service is unavailable for a moment. Please try again later.",
    },
}

TYPES: dict[str, dict[str, str]] = {
    "access": {"fr": "Accès à mes données", "nl": "Inzage in mijn gegevens", "en": "Access to my data"},
    "rectification": {"fr": "Rectification", "nl": "Rectificatie", "en": "Rectification"},
    "erasure": {"fr": "Effacement (droit à l'oubli)", "nl": "Wissing (recht op vergetelheid)", "en": "Erasure"},
    "restriction": {"fr": "Limitation du traitement", "nl": "Beperking van de verwerking", "en": "Restriction"},
    "portability": {"fr": "Portabilité", "nl": "Overdraagbaarheid", "en": "Portability"},
    "objection": {"fr": "Opposition", "nl": "Bezwaar", "en": "Objection"},
}
TYPE_HINTS: dict[str, dict[str, str]] = {
    "access": {
        "fr": "Une copie de toutes vos données et les informations de l'article 15.",
        "nl": "Een kopie van al uw gegevens en de informatie van artikel 15.",
        "en": "A copy of all your data and the information of Article 15.",
    },
    "rectification": {
        "fr": "Corriger des données inexactes.",
        "nl": "Onjuiste gegevens corrigeren.",
        "en": "Correct inaccurate data.",
    },
    "erasure": {
        "fr": "Effacer vos données, sauf celles que la loi oblige à garder.",
        "nl": "Uw gegevens wissen, behalve wat de wet verplicht te bewaren.",
        "en": "Erase your data, except what the law requires to keep.",
    },
    "restriction": {
        "fr": "Garder vos données sans les utiliser, le temps d'une vérification.",
        "nl": "Uw gegevens bewaren zonder ze te gebruiken, zolang iets wordt nagegaan.",
        "en": "Keep your data without using it while something is checked.",
    },
    "portability": {
        "fr": "Les données que vous nous avez fournies, en JSON et CSV, pour un autre service.",
        "nl": "De gegevens die u ons gaf, in JSON en CSV, voor een andere dienst.",
        "en": "The data you gave us, as JSON and CSV, for another service.",
    },
    "objection": {
        "fr": "Arrêter un traitement, dont la prospection commerciale.",
        "nl": "Een verwerking stoppen, waaronder direct marketing.",
        "en": "Stop a processing, direct marketing included.",
    },
}
STATUSES: dict[str, dict[str, str]] = {
    "received": {"fr": "Reçue", "nl": "Ontvangen", "en": "Received"},
    "identity_pending": {
        "fr": "En attente de votre code",
        "nl": "Wacht op uw code",
        "en": "Waiting for your code",
    },
    "in_progress": {"fr": "En cours", "nl": "In behandeling", "en": "In progress"},
    "completed": {"fr": "Terminée", "nl": "Afgehandeld", "en": "Completed"},
    "rejected": {"fr": "Refusée", "nl": "Geweigerd", "en": "Rejected"},
    "cancelled": {"fr": "Annulée", "nl": "Geannuleerd", "en": "Cancelled"},
}


def pick_language(asked: str | None, accept_language: str | None) -> Lang:
    """The `lang` asked for, else the first of the browser's languages Gardien speaks, else English."""
    if asked in LANGS:
        return asked
    for item in (accept_language or "").split(","):
        code = item.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return "en"


def size_text(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size = size // 1024
    return f"{size} GB"
