"""A first draft of a data map from a live database, for a human to review.

Tables, columns, primary keys and foreign keys come from the database's catalogue. Data categories
are guessed from column names first, then from a sample of values (e-mail addresses, phone numbers,
IBANs, IP addresses). Every guess is marked for review; nothing here is final.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import yaml
from sqlalchemy import Engine, MetaData, String, Table, Text, inspect, select

from gardien.datamap.hosts import open_engine

# (pattern on the lower-cased column name, fideslang data category). First match wins.
NAME_RULES: list[tuple[str, str]] = [
    (r"(^|_)e?mail(_address)?$|^email", "user.contact.email"),
    (r"phone|mobile|gsm|(^|_)tel(ephone)?($|_)", "user.contact.phone_number"),
    (r"^(first|given)_?name$|^firstname$|^prenom$", "user.name.first"),
    (r"^(last|family|sur)_?name$|^lastname$|^nom$", "user.name.last"),
    (r"(^|_)(full_?)?name$", "user.name"),
    (r"street|address_line|^address$|(^|_)addr(ess)?\d?$", "user.contact.address.street"),
    (r"(post(al)?_?code|zip(_?code)?|^cp$)", "user.contact.address.postal_code"),
    (r"(^|_)city$|town|commune|gemeente", "user.contact.address.city"),
    (r"country", "user.contact.address.country"),
    (r"birth|dob$|date_of_birth", "user.demographic.date_of_birth"),
    (r"gender|^sex$", "user.demographic.gender"),
    (r"iban|bank_?account|bic$", "user.financial.bank_account"),
    (r"card_?(number|no)|(^|_)pan$", "user.financial.credit_card"),
    (r"(^|_)ip(_?addr(ess)?)?$", "user.device.ip_address"),
    (r"user_?agent", "user.device"),
    (r"password|passwd|pwd_?hash|secret|token", "user.authorization.credentials"),
    (r"national_?(id|number)|ssn|niss|rijksregister|nir$", "user.government_id.national_identification_number"),
    (r"lat(itude)?$|lon(gitude)?$|geo", "user.location"),
    (r"(^|_)(message|comment|note|body|bio|description)s?$", "user.content"),
]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{8,20}$")
IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9 ]{11,30}$")
SUBJECT_TABLES = re.compile(r"^(users?|customers?|clients?|members?|accounts?|persons?|people|contacts?|subscribers?)$")


def category_from_name(column: str) -> str | None:
    name = column.lower()
    for pattern, category in NAME_RULES:
        if re.search(pattern, name):
            return category
    return None


def category_from_values(values: Sequence[Any]) -> str | None:
    """A category when most sampled values look alike; None when unclear."""
    texts = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if len(texts) < 3:
        return None

    def share(test: Any) -> float:
        return sum(1 for t in texts if test(t)) / len(texts)

    if share(EMAIL.match) >= 0.8:
        return "user.contact.email"
    if share(lambda t: IBAN.match(t.replace(" ", "").upper())) >= 0.8:
        return "user.financial.bank_account"
    if share(_is_ip) >= 0.8:
        return "user.device.ip_address"
    if share(lambda t: PHONE.match(t) and sum(c.isdigit() for c in t) >= 8) >= 0.8:
        return "user.contact.phone_number"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _sample(engine: Engine, table: Table, column: str, size: int) -> list[Any]:
    with engine.connect() as conn:
        stmt = select(table.c[column]).where(table.c[column].is_not(None)).limit(size)
        return list(conn.execute(stmt).scalars())


def scaffold(
    url: str, *, key: str = "app", schema: str | None = None, sample: int = 20, url_env: str | None = None
) -> str:
    """The draft map as YAML text."""
    engine = open_engine(url)
    try:
        return yaml.safe_dump(
            _draft(engine, key, schema, sample, url, url_env), sort_keys=False, allow_unicode=True, width=120
        )
    finally:
        engine.dispose()


def _draft(engine: Engine, key: str, schema: str | None, sample: int, url: str, url_env: str | None) -> dict[str, Any]:
    inspector = inspect(engine)
    names = sorted(inspector.get_table_names(schema=schema))
    metadata = MetaData()
    collections = []
    gardien_collections: dict[str, Any] = {}
    email_columns: list[tuple[str, str]] = []
    for name in names:
        table = Table(name, metadata, schema=schema, autoload_with=engine)
        # Reflected names are quoted_name, a str subclass that YAML cannot represent.
        pk = {str(c.name) for c in table.primary_key.columns}
        references: dict[str, list[dict[str, str]]] = {}
        for fk in inspector.get_foreign_keys(name, schema=schema):
            for local, remote in zip(fk["constrained_columns"], fk["referred_columns"], strict=False):
                references.setdefault(str(local), []).append(
                    {"dataset": key, "field": f"{fk['referred_table']}.{remote}", "direction": "from"}
                )
        fields = []
        erase: dict[str, Any] = {}
        for column in table.columns:
            column_name = str(column.name)
            category = category_from_name(column_name)
            is_text = isinstance(column.type, String | Text)
            if category is None and is_text and sample > 0:
                category = category_from_values(_sample(engine, table, column.name, sample))
            if column_name in references:
                category = category or "user.unique_id"
            entry: dict[str, Any] = {"name": column_name, "data_categories": [category or "system.operations"]}
            meta: dict[str, Any] = {}
            if column_name in pk:
                meta["primary_key"] = True
            if column_name in references:
                meta["references"] = references[column_name]
            if meta:
                entry["fides_meta"] = meta
            fields.append(entry)
            if category == "user.contact.email":
                email_columns.append((str(name), column_name))
            personal = category is not None and category.startswith("user.")
            if personal and column_name not in pk and not column.nullable:
                # NULL would be refused: a personal NOT NULL column gets a keyed hash (text) or is kept for review.
                erase[column_name] = {"erase": "keyed_hash" if is_text else "keep"}
        collections.append({"name": str(name), "fields": fields})
        if erase:
            gardien_collections[f"{key}.{name}"] = {"fields": erase}
    _mark_identity(collections, email_columns)
    store: dict[str, Any] = {"url_env": url_env} if url_env else {"url": url}
    if schema:
        store["schema"] = schema
    return {
        "dataset": [
            {
                "fides_key": key,
                "name": f"{key} (drafted by gardien datamap scaffold: review every category)",
                "collections": collections,
            }
        ],
        "gardien": {"stores": {key: store}, "collections": gardien_collections},
    }


def _mark_identity(collections: list[dict[str, Any]], emails: list[tuple[str, str]]) -> None:
    """The e-mail of the table that looks like the people table is the identity; else every e-mail column."""
    chosen = [e for e in emails if SUBJECT_TABLES.match(e[0].lower())] or emails
    for table, column in chosen:
        for coll in collections:
            if coll["name"] != table:
                continue
            for entry in coll["fields"]:
                if entry["name"] == column:
                    entry.setdefault("fides_meta", {})["identity"] = "email"
