"""Words of the privacy notice (Art. 13/14) in fr, nl, en and de.

The register's own entries (purpose names, descriptions, retention periods) stay in the language
the DPO typed them in; these are the words around them.
"""

from __future__ import annotations

from gardien.registers.schemas import DataCategory
from gardien.registers.texts import REGISTER_FR, Language

LANGUAGES: tuple[Language, ...] = ("fr", "nl", "en", "de")

WORDS: dict[Language, dict[str, str]] = {
    "fr": {
        "title": "Politique de confidentialité",
        "colon": " : ",
        "intro": "Cette notice explique comment {controller} traite vos données personnelles et quels sont vos "
        "droits, conformément aux articles 13 et 14 du règlement général sur la protection des données (RGPD).",
        "published": "Version {version}, publiée le {date}",
        "draft": "Projet, non publié",
        "controller": "Responsable du traitement",
        "representative": "Représentant",
        "dpo": "Délégué à la protection des données (DPO)",
        "address": "Adresse",
        "email": "Courriel",
        "phone": "Téléphone",
        "purposes": "Pourquoi nous traitons vos données, et sur quelle base légale",
        "col_activity": "Traitement",
        "col_purpose": "Finalité",
        "col_basis": "Base légale",
        "interest": "Intérêt légitime poursuivi : {interest}",
        "data": "Catégories de données traitées",
        "special": "Données sensibles : {list}",
        "sources": "Origine des données",
        "sources_text": "Lorsque les données ne sont pas collectées auprès de vous, elles proviennent de :",
        "recipients": "Destinataires de vos données",
        "processors": "Nos sous-traitants",
        "transfers": "Transferts hors de l'Espace économique européen",
        "safeguard": "garantie",
        "documentation": "documentation",
        "no_transfers": "Vos données ne sont pas transférées hors de l'Espace économique européen.",
        "retention": "Durée de conservation",
        "retention_unknown": "non précisée",
        "policy": "politique de conservation « {key} »",
        "rights": "Vos droits",
        "rights_intro": "Vous disposez des droits suivants sur vos données (articles 15 à 22 du RGPD) :",
        "rights_contact": "Pour les exercer, contactez : {contact}.",
        "rights_deadline": "Nous vous répondons dans un délai d'un mois. Ce délai peut être prolongé de deux mois "
        "compte tenu de la complexité et du nombre de demandes ; nous vous en informons alors dans le premier mois "
        "(article 12, paragraphe 3).",
        "withdrawal": "Retrait de votre consentement",
        "withdrawal_text": "Lorsque le traitement repose sur votre consentement, vous pouvez le retirer à tout moment, "
        "aussi simplement que vous l'avez donné. Le retrait ne remet pas en cause la licéité du traitement effectué "
        "avant lui (article 7, paragraphe 3).",
        "complaint": "Réclamation auprès de l'autorité de contrôle",
        "complaint_text": "Vous avez le droit d'introduire une réclamation auprès de l'autorité de contrôle : "
        "{authority}, {address}, {url}.",
        "requirement": "Caractère obligatoire de la fourniture des données",
        "automated": "Décisions automatisées et profilage",
        "automated_none": "Nous ne prenons aucune décision fondée exclusivement sur un traitement automatisé "
        "produisant des effets juridiques vous concernant ou vous affectant de manière significative.",
        "nir": "numéro d'inscription au répertoire (NIR, numéro de sécurité sociale)",
    },
    "nl": {
        "title": "Privacyverklaring",
        "colon": ": ",
        "intro": "Deze verklaring legt uit hoe {controller} uw persoonsgegevens verwerkt en welke rechten u hebt, "
        "volgens de artikelen 13 en 14 van de Algemene verordening gegevensbescherming (AVG).",
        "published": "Versie {version}, gepubliceerd op {date}",
        "draft": "Ontwerp, niet gepubliceerd",
        "controller": "Verwerkingsverantwoordelijke",
        "representative": "Vertegenwoordiger",
        "dpo": "Functionaris voor gegevensbescherming (FG)",
        "address": "Adres",
        "email": "E-mail",
        "phone": "Telefoon",
        "purposes": "Waarom wij uw gegevens verwerken, en op welke rechtsgrond",
        "col_activity": "Verwerking",
        "col_purpose": "Doel",
        "col_basis": "Rechtsgrond",
        "interest": "Nagestreefd gerechtvaardigd belang: {interest}",
        "data": "Categorieën van gegevens",
        "special": "Bijzondere categorieën van gegevens: {list}",
        "sources": "Herkomst van de gegevens",
        "sources_text": "Wanneer de gegevens niet bij u zijn verzameld, komen zij van:",
        "recipients": "Ontvangers van uw gegevens",
        "processors": "Onze verwerkers",
        "transfers": "Doorgiften buiten de Europese Economische Ruimte",
        "safeguard": "waarborg",
        "documentation": "documentatie",
        "no_transfers": "Uw gegevens worden niet doorgegeven buiten de Europese Economische Ruimte.",
        "retention": "Bewaartermijn",
        "retention_unknown": "niet vermeld",
        "policy": "bewaarbeleid '{key}'",
        "rights": "Uw rechten",
        "rights_intro": "U hebt de volgende rechten over uw gegevens (artikelen 15 tot en met 22 AVG):",
        "rights_contact": "Om ze uit te oefenen, neemt u contact op met: {contact}.",
        "rights_deadline": "Wij antwoorden binnen een maand. Die termijn kan met twee maanden worden verlengd, "
        "gezien de complexiteit en het aantal verzoeken; dat laten wij u dan binnen de eerste maand weten "
        "(artikel 12, lid 3).",
        "withdrawal": "Intrekken van uw toestemming",
        "withdrawal_text": "Berust de verwerking op uw toestemming, dan kunt u die op elk moment intrekken, even "
        "eenvoudig als u ze gaf. De intrekking laat de rechtmatigheid van de verwerking daarvóór onverlet "
        "(artikel 7, lid 3).",
        "complaint": "Klacht bij de toezichthoudende autoriteit",
        "complaint_text": "U hebt het recht een klacht in te dienen bij de toezichthoudende autoriteit: "
        "{authority}, {address}, {url}.",
        "requirement": "Verplichting om de gegevens te verstrekken",
        "automated": "Geautomatiseerde besluitvorming en profilering",
        "automated_none": "Wij nemen geen besluiten die uitsluitend op geautomatiseerde verwerking berusten en "
        "rechtsgevolgen voor u hebben of u anderszins in aanmerkelijke mate treffen.",
        "nir": "Frans socialezekerheidsnummer (NIR)",
    },
    "en": {
        "title": "Privacy notice",
        "colon": ": ",
        "intro": "This notice explains how {controller} processes your personal data and what your rights are, "
        "under Articles 13 and 14 of the General Data Protection Regulation (GDPR).",
        "published": "Version {version}, published on {date}",
        "draft": "Draft, not published",
        "controller": "Controller",
        "representative": "Representative",
        "dpo": "Data protection officer (DPO)",
        "address": "Address",
        "email": "E-mail",
        "phone": "Telephone",
        "purposes": "Why we process your data, and on what legal basis",
        "col_activity": "Processing",
        "col_purpose": "Purpose",
        "col_basis": "Legal basis",
        "interest": "Legitimate interest pursued: {interest}",
        "data": "Categories of data",
        "special": "Special categories of data: {list}",
        "sources": "Where the data come from",
        "sources_text": "When the data are not collected from you, they come from:",
        "recipients": "Recipients of your data",
        "processors": "Our processors",
        "transfers": "Transfers outside the European Economic Area",
        "safeguard": "safeguard",
        "documentation": "documentation",
        "no_transfers": "Your data are not transferred outside the European Economic Area.",
        "retention": "How long we keep your data",
        "retention_unknown": "not specified",
        "policy": "retention policy '{key}'",
        "rights": "Your rights",
        "rights_intro": "You have the following rights over your data (Articles 15 to 22 GDPR):",
        "rights_contact": "To exercise them, contact: {contact}.",
        "rights_deadline": "We answer within one month. That period may be extended by two further months, taking "
        "into account the complexity and number of requests; we then tell you so within the first month "
        "(Article 12(3)).",
        "withdrawal": "Withdrawing your consent",
        "withdrawal_text": "Where processing is based on your consent, you may withdraw it at any time, as easily as "
        "you gave it. Withdrawal does not affect the lawfulness of processing carried out before it (Article 7(3)).",
        "complaint": "Complaints to the supervisory authority",
        "complaint_text": "You have the right to lodge a complaint with the supervisory authority: "
        "{authority}, {address}, {url}.",
        "requirement": "Whether you must provide the data",
        "automated": "Automated decisions and profiling",
        "automated_none": "We take no decision based solely on automated processing that produces legal effects "
        "concerning you or similarly significantly affects you.",
        "nir": "French social security number (NIR)",
    },
    "de": {
        "title": "Datenschutzhinweise",
        "colon": ": ",
        "intro": "Diese Hinweise erklären, wie {controller} Ihre personenbezogenen Daten verarbeitet und welche "
        "Rechte Sie haben, nach Artikel 13 und 14 der Datenschutz-Grundverordnung (DSGVO).",
        "published": "Fassung {version}, veröffentlicht am {date}",
        "draft": "Entwurf, nicht veröffentlicht",
        "controller": "Verantwortlicher",
        "representative": "Vertreter",
        "dpo": "Datenschutzbeauftragter",
        "address": "Anschrift",
        "email": "E-Mail",
        "phone": "Telefon",
        "purposes": "Warum wir Ihre Daten verarbeiten, und auf welcher Rechtsgrundlage",
        "col_activity": "Verarbeitung",
        "col_purpose": "Zweck",
        "col_basis": "Rechtsgrundlage",
        "interest": "Verfolgtes berechtigtes Interesse: {interest}",
        "data": "Kategorien von Daten",
        "special": "Besondere Kategorien von Daten: {list}",
        "sources": "Herkunft der Daten",
        "sources_text": "Soweit die Daten nicht bei Ihnen erhoben werden, stammen sie aus:",
        "recipients": "Empfänger Ihrer Daten",
        "processors": "Unsere Auftragsverarbeiter",
        "transfers": "Übermittlungen außerhalb des Europäischen Wirtschaftsraums",
        "safeguard": "Garantie",
        "documentation": "Dokumentation",
        "no_transfers": "Ihre Daten werden nicht außerhalb des Europäischen Wirtschaftsraums übermittelt.",
        "retention": "Speicherdauer",
        "retention_unknown": "nicht angegeben",
        "policy": "Aufbewahrungsrichtlinie „{key}“",
        "rights": "Ihre Rechte",
        "rights_intro": "Sie haben folgende Rechte an Ihren Daten (Artikel 15 bis 22 DSGVO):",
        "rights_contact": "Um sie auszuüben, wenden Sie sich an: {contact}.",
        "rights_deadline": "Wir antworten innerhalb eines Monats. Diese Frist kann wegen der Komplexität und der "
        "Anzahl der Anträge um zwei weitere Monate verlängert werden; darüber unterrichten wir Sie innerhalb des "
        "ersten Monats (Artikel 12 Absatz 3).",
        "withdrawal": "Widerruf Ihrer Einwilligung",
        "withdrawal_text": "Beruht die Verarbeitung auf Ihrer Einwilligung, können Sie diese jederzeit widerrufen, "
        "so einfach, wie Sie sie erteilt haben. Der Widerruf berührt nicht die Rechtmäßigkeit der bis dahin "
        "erfolgten Verarbeitung (Artikel 7 Absatz 3).",
        "complaint": "Beschwerde bei der Aufsichtsbehörde",
        "complaint_text": "Sie haben das Recht, Beschwerde bei der Aufsichtsbehörde einzulegen: "
        "{authority}, {address}, {url}.",
        "requirement": "Pflicht zur Bereitstellung der Daten",
        "automated": "Automatisierte Entscheidungen und Profiling",
        "automated_none": "Wir treffen keine ausschließlich auf einer automatisierten Verarbeitung beruhende "
        "Entscheidung, die Ihnen gegenüber rechtliche Wirkung entfaltet oder Sie in ähnlicher Weise erheblich "
        "beeinträchtigt.",
        "nir": "französische Sozialversicherungsnummer (NIR)",
    },
}

# Arts. 15–22, in the Regulation's order. Portability and objection are listed only where a
# purpose's legal basis opens them (Art. 20(1)(a), Art. 21(1)).
RIGHTS: dict[Language, dict[str, str]] = {
    "fr": {
        "access": "Droit d'accès (art. 15) : savoir si vos données sont traitées et en obtenir une copie.",
        "rectification": "Droit de rectification (art. 16) : faire corriger des données inexactes et compléter "
        "des données incomplètes.",
        "erasure": "Droit à l'effacement (art. 17) : obtenir l'effacement de vos données dans les cas prévus par "
        "le règlement.",
        "restriction": "Droit à la limitation du traitement (art. 18) : faire suspendre le traitement, notamment "
        "le temps de vérifier l'exactitude des données ou une opposition.",
        "notification": "Nous informons les destinataires de vos données de toute rectification, de tout "
        "effacement et de toute limitation, et vous indiquons qui ils sont si vous le demandez (art. 19).",
        "portability": "Droit à la portabilité (art. 20) : recevoir les données que vous nous avez fournies dans un "
        "format structuré et lisible par machine, ou les faire transmettre à un autre organisme, pour les "
        "traitements fondés sur votre consentement ou sur un contrat.",
        "objection": "Droit d'opposition (art. 21) : vous opposer à tout moment, pour des raisons tenant à votre "
        "situation particulière, aux traitements fondés sur notre intérêt légitime ou sur une mission d'intérêt "
        "public, et sans avoir à vous justifier à la prospection.",
        "automated": "Droit de ne pas faire l'objet d'une décision fondée exclusivement sur un traitement "
        "automatisé (art. 22).",
    },
    "nl": {
        "access": "Recht van inzage (art. 15): weten of uw gegevens worden verwerkt en er een kopie van krijgen.",
        "rectification": "Recht op rectificatie (art. 16): onjuiste gegevens laten verbeteren en onvolledige "
        "laten aanvullen.",
        "erasure": "Recht op gegevenswissing (art. 17): uw gegevens laten wissen in de gevallen die de "
        "verordening noemt.",
        "restriction": "Recht op beperking van de verwerking (art. 18): de verwerking laten opschorten, onder meer "
        "zolang de juistheid van de gegevens of een bezwaar wordt onderzocht.",
        "notification": "Wij melden elke rectificatie, wissing of beperking aan de ontvangers van uw gegevens en "
        "zeggen u op verzoek wie zij zijn (art. 19).",
        "portability": "Recht op overdraagbaarheid (art. 20): de gegevens die u ons gaf ontvangen in een "
        "gestructureerde, machineleesbare vorm, of ze laten doorsturen naar een andere organisatie, wanneer de "
        "verwerking op uw toestemming of op een overeenkomst berust.",
        "objection": "Recht van bezwaar (art. 21): op elk moment bezwaar maken, om redenen die met uw specifieke "
        "situatie verband houden, tegen verwerking op grond van ons gerechtvaardigd belang of een taak van "
        "algemeen belang, en zonder opgaaf van redenen tegen direct marketing.",
        "automated": "Recht om niet te worden onderworpen aan een uitsluitend op geautomatiseerde verwerking "
        "gebaseerd besluit (art. 22).",
    },
    "en": {
        "access": "Right of access (Art. 15): to know whether your data are processed, and to get a copy of them.",
        "rectification": "Right to rectification (Art. 16): to have inaccurate data corrected and incomplete data "
        "completed.",
        "erasure": "Right to erasure (Art. 17): to have your data erased in the cases the Regulation provides.",
        "restriction": "Right to restriction of processing (Art. 18): to have processing suspended, among other "
        "cases while the accuracy of the data or an objection is being checked.",
        "notification": "We tell the recipients of your data about any rectification, erasure or restriction, and "
        "tell you who they are if you ask (Art. 19).",
        "portability": "Right to data portability (Art. 20): to receive the data you gave us in a structured, "
        "machine-readable format, or have them sent to another organisation, where processing is based on your "
        "consent or on a contract.",
        "objection": "Right to object (Art. 21): to object at any time, on grounds relating to your particular "
        "situation, to processing based on our legitimate interests or on a task in the public interest, and "
        "without giving reasons to direct marketing.",
        "automated": "Right not to be subject to a decision based solely on automated processing (Art. 22).",
    },
    "de": {
        "access": "Auskunftsrecht (Art. 15): zu erfahren, ob Ihre Daten verarbeitet werden, und eine Kopie davon "
        "zu erhalten.",
        "rectification": "Recht auf Berichtigung (Art. 16): unrichtige Daten berichtigen und unvollständige "
        "vervollständigen zu lassen.",
        "erasure": "Recht auf Löschung (Art. 17): Ihre Daten in den von der Verordnung vorgesehenen Fällen löschen "
        "zu lassen.",
        "restriction": "Recht auf Einschränkung der Verarbeitung (Art. 18): die Verarbeitung aussetzen zu lassen, "
        "unter anderem solange die Richtigkeit der Daten oder ein Widerspruch geprüft wird.",
        "notification": "Wir teilen jede Berichtigung, Löschung oder Einschränkung den Empfängern Ihrer Daten mit "
        "und nennen Ihnen diese auf Verlangen (Art. 19).",
        "portability": "Recht auf Datenübertragbarkeit (Art. 20): die Daten, die Sie uns bereitgestellt haben, in "
        "einem strukturierten, maschinenlesbaren Format zu erhalten oder an eine andere Stelle übermitteln zu "
        "lassen, wenn die Verarbeitung auf Ihrer Einwilligung oder einem Vertrag beruht.",
        "objection": "Widerspruchsrecht (Art. 21): aus Gründen, die sich aus Ihrer besonderen Situation ergeben, "
        "jederzeit der Verarbeitung auf Grundlage unseres berechtigten Interesses oder einer Aufgabe im "
        "öffentlichen Interesse zu widersprechen, und der Direktwerbung ohne Begründung.",
        "automated": "Recht, keiner ausschließlich auf einer automatisierten Verarbeitung beruhenden Entscheidung "
        "unterworfen zu werden (Art. 22).",
    },
}

LEGAL_BASES: dict[Language, dict[str, str]] = {
    "fr": {
        "consent": "Votre consentement (art. 6, paragraphe 1, a)",
        "contract": "L'exécution d'un contrat avec vous ou de mesures précontractuelles (art. 6, paragraphe 1, b)",
        "legal_obligation": "Le respect d'une obligation légale (art. 6, paragraphe 1, c)",
        "vital_interests": "La sauvegarde d'intérêts vitaux (art. 6, paragraphe 1, d)",
        "public_task": "L'exécution d'une mission d'intérêt public (art. 6, paragraphe 1, e)",
        "legitimate_interests": "Notre intérêt légitime (art. 6, paragraphe 1, f)",
    },
    "nl": {
        "consent": "Uw toestemming (art. 6, lid 1, a)",
        "contract": "De uitvoering van een overeenkomst met u of van precontractuele maatregelen (art. 6, lid 1, b)",
        "legal_obligation": "Het nakomen van een wettelijke verplichting (art. 6, lid 1, c)",
        "vital_interests": "De bescherming van vitale belangen (art. 6, lid 1, d)",
        "public_task": "De vervulling van een taak van algemeen belang (art. 6, lid 1, e)",
        "legitimate_interests": "Ons gerechtvaardigd belang (art. 6, lid 1, f)",
    },
    "en": {
        "consent": "Your consent (Art. 6(1)(a))",
        "contract": "Performance of a contract with you, or steps taken before entering into one (Art. 6(1)(b))",
        "legal_obligation": "Compliance with a legal obligation (Art. 6(1)(c))",
        "vital_interests": "Protection of vital interests (Art. 6(1)(d))",
        "public_task": "Performance of a task carried out in the public interest (Art. 6(1)(e))",
        "legitimate_interests": "Our legitimate interests (Art. 6(1)(f))",
    },
    "de": {
        "consent": "Ihre Einwilligung (Art. 6 Abs. 1 lit. a)",
        "contract": "Erfüllung eines Vertrags mit Ihnen oder vorvertraglicher Maßnahmen (Art. 6 Abs. 1 lit. b)",
        "legal_obligation": "Erfüllung einer rechtlichen Verpflichtung (Art. 6 Abs. 1 lit. c)",
        "vital_interests": "Schutz lebenswichtiger Interessen (Art. 6 Abs. 1 lit. d)",
        "public_task": "Wahrnehmung einer Aufgabe im öffentlichen Interesse (Art. 6 Abs. 1 lit. e)",
        "legitimate_interests": "Unser berechtigtes Interesse (Art. 6 Abs. 1 lit. f)",
    },
}

DATA_CATEGORIES: dict[Language, dict[str, str]] = {
    # The CNIL template's own words, as the French exports write them.
    "fr": {c.value: REGISTER_FR[c.value] for c in DataCategory},
    "nl": {
        "identity": "Identiteits- en identificatiegegevens",
        "personal_life": "Persoonlijk leven",
        "professional_life": "Beroepsleven",
        "economic_financial": "Economische en financiële gegevens",
        "connection": "Verbindingsgegevens",
        "location": "Locatiegegevens",
        "other": "Andere gegevens",
    },
    "en": {
        "identity": "Identity and identification data",
        "personal_life": "Personal life",
        "professional_life": "Professional life",
        "economic_financial": "Economic and financial information",
        "connection": "Connection data",
        "location": "Location data",
        "other": "Other data",
    },
    "de": {
        "identity": "Identitäts- und Identifikationsdaten",
        "personal_life": "Privatleben",
        "professional_life": "Berufsleben",
        "economic_financial": "Wirtschaftliche und finanzielle Angaben",
        "connection": "Verbindungsdaten",
        "location": "Standortdaten",
        "other": "Sonstige Daten",
    },
}

SPECIAL_CATEGORIES: dict[Language, dict[str, str]] = {
    "fr": {
        "racial_or_ethnic_origin": "origine raciale ou ethnique",
        "political_opinions": "opinions politiques",
        "religious_or_philosophical_beliefs": "convictions religieuses ou philosophiques",
        "trade_union_membership": "appartenance syndicale",
        "genetic": "données génétiques",
        "biometric": "données biométriques",
        "health": "données de santé",
        "sex_life_or_orientation": "vie sexuelle ou orientation sexuelle",
        "criminal_convictions": "condamnations pénales et infractions",
    },
    "nl": {
        "racial_or_ethnic_origin": "ras of etnische afkomst",
        "political_opinions": "politieke opvattingen",
        "religious_or_philosophical_beliefs": "religieuze of levensbeschouwelijke overtuigingen",
        "trade_union_membership": "lidmaatschap van een vakbond",
        "genetic": "genetische gegevens",
        "biometric": "biometrische gegevens",
        "health": "gezondheidsgegevens",
        "sex_life_or_orientation": "seksueel gedrag of seksuele gerichtheid",
        "criminal_convictions": "strafrechtelijke veroordelingen en strafbare feiten",
    },
    "en": {
        "racial_or_ethnic_origin": "racial or ethnic origin",
        "political_opinions": "political opinions",
        "religious_or_philosophical_beliefs": "religious or philosophical beliefs",
        "trade_union_membership": "trade union membership",
        "genetic": "genetic data",
        "biometric": "biometric data",
        "health": "health data",
        "sex_life_or_orientation": "sex life or sexual orientation",
        "criminal_convictions": "criminal convictions and offences",
    },
    "de": {
        "racial_or_ethnic_origin": "rassische oder ethnische Herkunft",
        "political_opinions": "politische Meinungen",
        "religious_or_philosophical_beliefs": "religiöse oder weltanschauliche Überzeugungen",
        "trade_union_membership": "Gewerkschaftszugehörigkeit",
        "genetic": "genetische Daten",
        "biometric": "biometrische Daten",
        "health": "Gesundheitsdaten",
        "sex_life_or_orientation": "Sexualleben oder sexuelle Orientierung",
        "criminal_convictions": "strafrechtliche Verurteilungen und Straftaten",
    },
}

SAFEGUARDS: dict[Language, dict[str, str]] = {
    "fr": {
        "adequacy": "décision d'adéquation (art. 45)",
        "scc": "clauses contractuelles types (art. 46)",
        "bcr": "règles d'entreprise contraignantes (art. 47)",
        "code_of_conduct": "code de conduite approuvé (art. 46, paragraphe 2, e)",
        "certification": "certification approuvée (art. 46, paragraphe 2, f)",
        "dpf": "cadre de protection des données UE–États-Unis (décision d'adéquation du 10 juillet 2023)",
        "derogation": "dérogation pour une situation particulière (art. 49)",
    },
    "nl": {
        "adequacy": "adequaatheidsbesluit (art. 45)",
        "scc": "modelcontractbepalingen (art. 46)",
        "bcr": "bindende bedrijfsvoorschriften (art. 47)",
        "code_of_conduct": "goedgekeurde gedragscode (art. 46, lid 2, e)",
        "certification": "goedgekeurde certificering (art. 46, lid 2, f)",
        "dpf": "EU-VS-kader voor gegevensbescherming (adequaatheidsbesluit van 10 juli 2023)",
        "derogation": "afwijking voor een specifieke situatie (art. 49)",
    },
    "en": {
        "adequacy": "adequacy decision (Art. 45)",
        "scc": "standard contractual clauses (Art. 46)",
        "bcr": "binding corporate rules (Art. 47)",
        "code_of_conduct": "approved code of conduct (Art. 46(2)(e))",
        "certification": "approved certification (Art. 46(2)(f))",
        "dpf": "EU–US Data Privacy Framework (adequacy decision of 10 July 2023)",
        "derogation": "derogation for a specific situation (Art. 49)",
    },
    "de": {
        "adequacy": "Angemessenheitsbeschluss (Art. 45)",
        "scc": "Standardvertragsklauseln (Art. 46)",
        "bcr": "verbindliche interne Datenschutzvorschriften (Art. 47)",
        "code_of_conduct": "genehmigte Verhaltensregeln (Art. 46 Abs. 2 lit. e)",
        "certification": "genehmigter Zertifizierungsmechanismus (Art. 46 Abs. 2 lit. f)",
        "dpf": "EU-US-Datenschutzrahmen (Angemessenheitsbeschluss vom 10. Juli 2023)",
        "derogation": "Ausnahme für bestimmte Fälle (Art. 49)",
    },
}

RECIPIENT_KINDS: dict[Language, dict[str, str]] = {
    "fr": {
        "internal": "service interne",
        "processor": "sous-traitant",
        "partner": "partenaire",
        "authority": "autorité",
        "other": "autre",
    },
    "nl": {
        "internal": "interne dienst",
        "processor": "verwerker",
        "partner": "partner",
        "authority": "overheidsinstantie",
        "other": "andere",
    },
    "en": {
        "internal": "internal department",
        "processor": "processor",
        "partner": "partner",
        "authority": "public authority",
        "other": "other",
    },
    "de": {
        "internal": "interne Abteilung",
        "processor": "Auftragsverarbeiter",
        "partner": "Partner",
        "authority": "Behörde",
        "other": "Sonstige",
    },
}
