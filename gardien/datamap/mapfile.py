"""The data map file: fideslang datasets read unchanged, Gardien's additions under `gardien:`.

`load_map(text)` parses and checks the file without touching any database and returns a
`DataMap`: tables with their fields' categories, identities, keys, erasure strategies, rectification
rules and legal holds, and the reference graph as directed edges. Every problem is reported at
once, each with its path in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gardien.privacy.errors import OperatorError
from gardien.privacy.operators import OperatorSpec
from gardien.privacy.records import RecordPolicy

MAX_MAP_BYTES = 1_000_000
NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$"
LANGS = ("en", "fr", "nl")


class Strategy(StrEnum):
    DELETE = "delete"
    NULL = "null"
    KEYED_HASH = "keyed_hash"
    RANDOM = "random"
    GENERALISE = "generalise"
    KEEP = "keep"
    KEEP_UNDER_HOLD = "keep_under_hold"


# Fides masking strategy names, as they appear in `masking_strategy_override`.
FIDES_STRATEGIES = {
    "null_rewrite": Strategy.NULL,
    "hash": Strategy.KEYED_HASH,
    "hmac": Strategy.KEYED_HASH,
    "random_string_rewrite": Strategy.RANDOM,
    "preserve": Strategy.KEEP,
    "delete": Strategy.DELETE,
}


@dataclass(frozen=True)
class MapIssue:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.path, "message": self.message, "type": "datamap"}


class MapInvalid(ValueError):
    """The map has problems; `issues` lists every one with its path."""

    def __init__(self, issues: list[MapIssue]) -> None:
        super().__init__("; ".join(f"{i.path}: {i.message}" for i in issues[:5]))
        self.issues = issues


# --- the fideslang part: lenient, Fides files carry many members Gardien does not use -------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _WithMeta(_Lenient):
    @model_validator(mode="before")
    @classmethod
    def _old_meta_name(cls, data: Any) -> Any:
        """Fides still reads `fidesops_meta`, the member's older name."""
        if isinstance(data, dict) and "fidesops_meta" in data and "fides_meta" not in data:
            return {**data, "fides_meta": data["fidesops_meta"]}
        return data


class FidesReference(_Lenient):
    dataset: str = Field(max_length=200)
    field: str = Field(max_length=400)
    direction: Literal["from", "to"] | None = None


class FidesMasking(_Lenient):
    strategy: str = Field(max_length=100)
    configuration: dict[str, Any] | None = None


class FidesFieldMeta(_Lenient):
    identity: str | None = Field(default=None, max_length=100)
    primary_key: bool | None = None
    references: list[FidesReference] | None = None
    masking_strategy_override: FidesMasking | None = None


class FidesField(_WithMeta):
    name: str = Field(max_length=128)
    data_categories: list[str] | None = None
    fides_meta: FidesFieldMeta | None = None
    fields: list[Any] | None = None


class FidesCollectionMeta(_Lenient):
    after: list[str] | None = None
    erase_after: list[str] | None = None
    skip_processing: bool | None = None
    masking_strategy_override: FidesMasking | None = None


class FidesCollection(_WithMeta):
    name: str = Field(max_length=128)
    fields: list[FidesField] = Field(default_factory=list)
    fides_meta: FidesCollectionMeta | None = None
    data_categories: list[str] | None = None


class FidesDataset(_Lenient):
    fides_key: str = Field(max_length=200)
    name: str | None = None
    collections: list[FidesCollection] = Field(default_factory=list)


# --- Gardien's part: strict, a misspelt option is an error ---------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = str | dict[Literal["en", "fr", "nl"], str]


class StoreIn(_Strict):
    url: str | None = Field(default=None, max_length=2000)
    url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    schema_: str | None = Field(default=None, alias="schema", pattern=NAME)

    @model_validator(mode="after")
    def _one_location(self) -> StoreIn:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        if self.url is not None:
            try:
                make_url(self.url)
            except ArgumentError as exc:
                raise ValueError(f"not a database URL: {exc}") from exc
        return self


class RectifyRule(_Strict):
    type: Literal["string", "email", "integer", "decimal", "date", "boolean"] = "string"
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)
    pattern: str | None = Field(default=None, max_length=500)
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _pattern_compiles(self) -> RectifyRule:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return self


class FieldIn(_Strict):
    erase: Strategy | None = None
    # generalise: a date to its year (or month), a number to a multiple of `step`, a text to `keep` characters.
    step: float | None = Field(default=None, gt=0)
    keep: int | None = Field(default=None, ge=0, le=1000)
    to: Literal["year", "month"] | None = None
    rectify: RectifyRule | bool | None = None
    # Retention's anonymisation (`gardien anonymize`, anonymise policies): a privacy operator for the
    # whole column, and/or one per JSON path inside it (`context.ip`, `card.user_id`).
    anonymize: OperatorSpec | None = None
    anonymize_paths: dict[str, OperatorSpec] = Field(default_factory=dict, max_length=64)
    # Art. 20: provided by the person (in the portability package); default: see FieldSpec.provided.
    provided: bool | None = None


class HoldIn(_Strict):
    reason: Text
    basis: str = Field(default="legal_obligation", max_length=100)
    years: int | None = Field(default=None, ge=1, le=100)
    since: str | None = Field(default=None, pattern=NAME)


class CollectionIn(_Strict):
    erase: Literal["delete", "fields"] | None = None
    hold: HoldIn | None = None
    # The column that dates a row, for `gardien anonymize --older-than` (created, occurred_at…).
    dated_by: str | None = Field(default=None, pattern=NAME)
    provided: bool | None = None
    fields: dict[str, FieldIn] = Field(default_factory=dict)


class RecipientIn(_Strict):
    name: str = Field(max_length=300)
    contact: str | None = Field(default=None, max_length=300)
    categories: list[str] = Field(default_factory=list)
    tables: list[str] = Field(default_factory=list)
    country: str | None = Field(default=None, max_length=100)


class NoticeIn(_Strict):
    controller: Text | None = None
    dpo: Text | None = None
    purposes: list[Text] = Field(default_factory=list)
    legal_basis: Text | None = None
    retention: Text | None = None
    source: Text | None = None
    automated_decisions: Text | None = None
    supervisory_authority: Text | None = None
    transfers: Text | None = None


class GardienIn(_Strict):
    stores: dict[str, StoreIn] = Field(default_factory=dict)
    collections: dict[str, CollectionIn] = Field(default_factory=dict)
    notice: NoticeIn = Field(default_factory=NoticeIn)
    recipients: list[RecipientIn] = Field(default_factory=list)


class MapFileIn(_Lenient):
    dataset: list[FidesDataset]
    gardien: GardienIn = Field(default_factory=GardienIn)


# --- the compiled map ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    categories: tuple[str, ...]
    identity: str | None
    primary_key: bool
    erase: Strategy | None  # None: decided by the table (delete the row, or the default)
    options: FieldIn
    rectify: RectifyRule | None
    # Art. 20: the field goes into the portability package. Set by `provided` on the field, else on
    # the table; by default a field with a `user` category that is not `user.derived` (what the
    # person gave or their use of the service produced, not what the controller inferred: WP242).
    provided: bool = False

    def anonymize_rules(self) -> dict[str, OperatorSpec]:
        """The field's anonymisation rules by path from the table: `payload`, `payload.context.ip`."""
        rules = {self.name: self.options.anonymize} if self.options.anonymize is not None else {}
        rules.update({f"{self.name}.{path}": spec for path, spec in self.options.anonymize_paths.items()})
        return rules

    @property
    def personal(self) -> bool:
        return any(c == "user" or c.startswith("user.") for c in self.categories)

    def strategy(self, *, held: bool, delete_rows: bool) -> Strategy:
        """What erasure does to this field of one row."""
        if self.erase is Strategy.KEEP_UNDER_HOLD and held:
            return Strategy.KEEP
        if self.erase not in (None, Strategy.DELETE, Strategy.KEEP_UNDER_HOLD):
            return self.erase
        if delete_rows and not held:
            return Strategy.DELETE
        if self.primary_key:
            return Strategy.KEEP
        return Strategy.NULL if self.personal else Strategy.KEEP


@dataclass(frozen=True)
class Hold:
    reason: Text
    basis: str
    years: int | None
    since: str | None


@dataclass
class TableSpec:
    dataset: str
    name: str
    fields: dict[str, FieldSpec]
    primary_key: tuple[str, ...]
    delete_rows: bool
    hold: Hold | None
    erase_after: tuple[str, ...]
    path: str
    dated_by: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.dataset}.{self.name}"

    @property
    def categories(self) -> set[str]:
        return {c for f in self.fields.values() for c in f.categories}

    def anonymize_rules(self) -> dict[str, OperatorSpec]:
        return {path: spec for f in self.fields.values() for path, spec in f.anonymize_rules().items()}


@dataclass(frozen=True)
class Edge:
    """Values of `source` (table, field) lead to the rows of `target` whose field holds them."""

    source: tuple[str, str]
    target: tuple[str, str]


@dataclass(frozen=True)
class Store:
    name: str
    url: str | None
    url_env: str | None
    schema: str | None

    def resolve_url(self) -> str | None:
        """The URL, from the map or the environment; None when the variable is not set."""
        if self.url is not None:
            return self.url
        return os.environ.get(self.url_env or "") or None


@dataclass
class DataMap:
    tables: dict[str, TableSpec]
    edges: list[Edge]
    stores: dict[str, Store]
    notice: NoticeIn
    recipients: list[RecipientIn]
    identities: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def store_of(self, table: str) -> Store:
        return self.stores[self.tables[table].dataset]

    def identity_types(self) -> set[str]:
        return set(self.identities)


def _pydantic_issues(exc: ValidationError, prefix: str = "") -> list[MapIssue]:
    return [
        MapIssue(".".join(str(p) for p in (prefix, *e["loc"]) if p != "") or "document", e["msg"]) for e in exc.errors()
    ]


class _Loader(yaml.SafeLoader):
    """Safe YAML without aliases: a map has no use for them, and they let a small file expand to a huge one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted in a data map", mark)
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    if len(text.encode()) > MAX_MAP_BYTES:
        raise MapInvalid([MapIssue("document", f"a map holds at most {MAX_MAP_BYTES} bytes")])
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError as exc:
        raise MapInvalid([MapIssue("document", "nested too deeply")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "document"
        raise MapInvalid([MapIssue(where, f"not YAML: {getattr(exc, 'problem', None) or exc}")]) from exc


def load_map(text: str) -> DataMap:
    raw = parse_yaml(text)
    if not isinstance(raw, dict) or "dataset" not in raw:
        raise MapInvalid([MapIssue("dataset", "a data map is a mapping with a fideslang `dataset:` list")])
    try:
        parsed = MapFileIn.model_validate(raw)
    except ValidationError as exc:
        raise MapInvalid(_pydantic_issues(exc)) from exc
    return compile_map(parsed)


def compile_map(parsed: MapFileIn) -> DataMap:
    issues: list[MapIssue] = []
    extra = parsed.gardien
    tables: dict[str, TableSpec] = {}
    pending_refs: list[tuple[str, str, FidesReference, str]] = []
    seen_datasets: set[str] = set()
    for d, dataset in enumerate(parsed.dataset):
        if dataset.fides_key in seen_datasets:
            issues.append(MapIssue(f"dataset.{d}.fides_key", f"dataset {dataset.fides_key!r} is declared twice"))
        seen_datasets.add(dataset.fides_key)
        if dataset.fides_key not in extra.stores:
            issues.append(
                MapIssue(
                    f"dataset.{d}",
                    f"no store for dataset {dataset.fides_key!r}: add gardien.stores.{dataset.fides_key}",
                )
            )
        for c, coll in enumerate(dataset.collections):
            path = f"dataset.{d}.collections.{c}"
            qualified = f"{dataset.fides_key}.{coll.name}"
            if qualified in tables:
                issues.append(MapIssue(f"{path}.name", f"table {qualified!r} is declared twice"))
                continue
            table = _table(dataset.fides_key, coll, extra.collections.get(qualified), path, issues)
            tables[qualified] = table
            for f, fld in enumerate(coll.fields):
                for r, ref in enumerate((fld.fides_meta.references if fld.fides_meta else None) or []):
                    pending_refs.append((qualified, fld.name, ref, f"{path}.fields.{f}.fides_meta.references.{r}"))
    for name in extra.stores:
        if name not in seen_datasets:
            issues.append(MapIssue(f"gardien.stores.{name}", f"no dataset has fides_key {name!r}"))
    for qualified, coll_extra in extra.collections.items():
        table_spec = tables.get(qualified)
        if table_spec is None:
            issues.append(MapIssue(f"gardien.collections.{qualified}", f"no table {qualified!r} in the datasets"))
            continue
        for fname in coll_extra.fields:
            if fname not in table_spec.fields:
                issues.append(
                    MapIssue(
                        f"gardien.collections.{qualified}.fields.{fname}", f"{qualified} declares no field {fname!r}"
                    )
                )
    edges = _edges(tables, pending_refs, issues)
    identities: dict[str, list[tuple[str, str]]] = {}
    for qualified, table_spec in tables.items():
        for fspec in table_spec.fields.values():
            if fspec.identity:
                identities.setdefault(fspec.identity, []).append((qualified, fspec.name))
    _check_reach(tables, edges, identities, issues)
    for r, recipient in enumerate(extra.recipients):
        for t, name in enumerate(recipient.tables):
            if name not in tables:
                issues.append(MapIssue(f"gardien.recipients.{r}.tables.{t}", f"no table {name!r} in the datasets"))
    if issues:
        raise MapInvalid(issues)
    stores = {name: Store(name, store.url, store.url_env, store.schema_) for name, store in extra.stores.items()}
    return DataMap(tables, edges, stores, extra.notice, extra.recipients, identities)


def _table(
    dataset: str, coll: FidesCollection, extra: CollectionIn | None, path: str, issues: list[MapIssue]
) -> TableSpec:
    fields: dict[str, FieldSpec] = {}
    meta = coll.fides_meta
    fides_delete = bool(meta and meta.masking_strategy_override and meta.masking_strategy_override.strategy == "delete")
    if meta and meta.masking_strategy_override and not fides_delete:
        issues.append(
            MapIssue(
                f"{path}.fides_meta.masking_strategy_override.strategy",
                "only `delete` is a collection-level strategy",
            )
        )
    delete_rows = extra.erase == "delete" if extra is not None and extra.erase is not None else fides_delete
    for f, fld in enumerate(coll.fields):
        fpath = f"{path}.fields.{f}"
        if fld.name in fields:
            issues.append(MapIssue(f"{fpath}.name", f"field {fld.name!r} is declared twice"))
            continue
        if fld.fields:
            issues.append(MapIssue(f"{fpath}.fields", "nested fields are for document stores; SQL columns have none"))
        fmeta = fld.fides_meta or FidesFieldMeta()
        options = (extra.fields.get(fld.name) if extra is not None else None) or FieldIn()
        erase = options.erase
        if erase is None and fmeta.masking_strategy_override is not None:
            name = fmeta.masking_strategy_override.strategy
            erase = FIDES_STRATEGIES.get(name)
            if erase is None or erase is Strategy.DELETE:
                issues.append(
                    MapIssue(
                        f"{fpath}.fides_meta.masking_strategy_override.strategy",
                        f"strategy {name!r} is not supported here; use one of "
                        + ", ".join(k for k, v in FIDES_STRATEGIES.items() if v is not Strategy.DELETE),
                    )
                )
        if erase is Strategy.DELETE:
            issues.append(
                MapIssue(
                    f"gardien.collections.{dataset}.{coll.name}.fields.{fld.name}.erase",
                    "delete is a table's strategy: set `erase: delete` on the collection",
                )
            )
        if fmeta.primary_key and erase not in (None, Strategy.KEEP):
            issues.append(
                MapIssue(
                    f"gardien.collections.{dataset}.{coll.name}.fields.{fld.name}.erase",
                    "a primary key holds the rows together: keep it, or delete the rows",
                )
            )
        if erase is Strategy.GENERALISE and options.step is None and options.keep is None and options.to is None:
            issues.append(
                MapIssue(
                    f"gardien.collections.{dataset}.{coll.name}.fields.{fld.name}",
                    "generalise needs `to: year|month` (dates), `step` (numbers) or `keep` (texts)",
                )
            )
        if erase is Strategy.KEEP_UNDER_HOLD and (extra is None or extra.hold is None):
            issues.append(
                MapIssue(
                    f"gardien.collections.{dataset}.{coll.name}.fields.{fld.name}.erase",
                    "keep_under_hold needs a hold on the table (gardien.collections.<table>.hold)",
                )
            )
        if options.anonymize is not None or options.anonymize_paths:
            rules = {fld.name: options.anonymize} if options.anonymize is not None else {}
            rules.update({f"{fld.name}.{p}": spec for p, spec in options.anonymize_paths.items()})
            try:
                RecordPolicy(rules)
            except OperatorError as exc:
                issues.append(
                    MapIssue(
                        f"gardien.collections.{dataset}.{coll.name}.fields.{fld.name}.anonymize",
                        f"{exc.field}: {exc}" if exc.field else str(exc),
                    )
                )
        rectify = options.rectify
        rule = RectifyRule() if rectify is True else (rectify or None)
        provided = options.provided if options.provided is not None else extra.provided if extra is not None else None
        if provided is None:
            provided = any(
                (c == "user" or c.startswith("user.")) and not (c == "user.derived" or c.startswith("user.derived."))
                for c in fld.data_categories or ()
            )
        fields[fld.name] = FieldSpec(
            name=fld.name,
            categories=tuple(fld.data_categories or ()),
            identity=fmeta.identity,
            primary_key=bool(fmeta.primary_key),
            erase=erase,
            options=options,
            rectify=rule,
            provided=provided,
        )
    hold = None
    if extra is not None and extra.hold is not None:
        h = extra.hold
        hold = Hold(h.reason, h.basis, h.years, h.since)
        if h.since is not None and h.since not in fields:
            issues.append(
                MapIssue(
                    f"gardien.collections.{dataset}.{coll.name}.hold.since", f"{h.since!r} is not a field of the table"
                )
            )
        if h.since is not None and h.years is None:
            issues.append(MapIssue(f"gardien.collections.{dataset}.{coll.name}.hold", "`since` needs `years`"))
    erase_after = tuple((meta.erase_after if meta else None) or ())
    primary_key = tuple(name for name, spec in fields.items() if spec.primary_key)
    dated_by = extra.dated_by if extra is not None else None
    if dated_by is not None and dated_by not in fields:
        issues.append(
            MapIssue(f"gardien.collections.{dataset}.{coll.name}.dated_by", f"{dated_by!r} is not a field of the table")
        )
    return TableSpec(dataset, coll.name, fields, primary_key, delete_rows, hold, erase_after, path, dated_by)


def _edges(
    tables: Mapping[str, TableSpec],
    refs: Iterable[tuple[str, str, FidesReference, str]],
    issues: list[MapIssue],
) -> list[Edge]:
    edges: list[Edge] = []
    for qualified, field_name, ref, path in refs:
        table_name, _, other_field = ref.field.rpartition(".")
        other = f"{ref.dataset}.{table_name}"
        target = tables.get(other)
        if not table_name or target is None:
            issues.append(MapIssue(f"{path}.field", f"reference to nowhere: no table {other!r} in the datasets"))
            continue
        if other_field not in target.fields:
            issues.append(MapIssue(f"{path}.field", f"reference to nowhere: {other} declares no field {other_field!r}"))
            continue
        here, there = (qualified, field_name), (other, other_field)
        if ref.direction in (None, "from"):
            edges.append(Edge(there, here))
        if ref.direction in (None, "to"):
            edges.append(Edge(here, there))
    return list(dict.fromkeys(edges))


def _check_reach(
    tables: Mapping[str, TableSpec],
    edges: list[Edge],
    identities: Mapping[str, list[tuple[str, str]]],
    issues: list[MapIssue],
) -> None:
    if not identities:
        issues.append(MapIssue("dataset", "no field is an identity (fides_meta.identity): the map finds nobody"))
        return
    reached = {table for seeds in identities.values() for table, _ in seeds}
    frontier = list(reached)
    while frontier:
        table = frontier.pop()
        for edge in edges:
            if edge.source[0] == table and edge.target[0] not in reached:
                reached.add(edge.target[0])
                frontier.append(edge.target[0])
    for qualified, spec in tables.items():
        if qualified not in reached:
            issues.append(
                MapIssue(
                    spec.path,
                    f"table {qualified} is reached by no identity: add an identity or a reference that leads to it",
                )
            )


def text_in(text: Text | None, lang: str) -> str | None:
    if text is None or isinstance(text, str):
        return text
    return text.get(lang) or text.get("en") or next(iter(text.values()), None)  # type: ignore[call-overload]
