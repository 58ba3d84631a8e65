"""Shapes of retention policies, legal holds, runs and quotas. Every string, number and list is bounded."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from croniter import CroniterError, croniter
from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gardien.core.schemas import NO_NUL
from gardien.privacy.errors import OperatorError
from gardien.privacy.operators import OperatorSpec
from gardien.privacy.records import RecordPolicy

NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$"
MAP_KEY = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CATEGORY = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
PERIOD = re.compile(r"^P(?:(\d{1,3})Y)?(?:(\d{1,4})M)?(?:(\d{1,5})D)?$")
STORES = ("ledger", "consents", "requests", "exports")
# What each of Gardien's own stores counts its period from, and what a policy may do with it.
# `ended_at` is not a column: a consent event ends when it expires or is replaced (gardien.consent.purge).
# Requests are anonymised, never deleted: the period reports and Art. 12 statistics still count them.
STORE_REFERENCE = {"ledger": "recorded_at", "consents": "ended_at", "requests": "closed_at", "exports": "created_at"}
STORE_ACTIONS = {"ledger": ("archive",), "consents": ("delete",), "requests": ("anonymise",), "exports": ("delete",)}

Text = Annotated[str, Field(max_length=4000, pattern=NO_NUL)]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_period(text: str) -> relativedelta:
    """An ISO 8601 duration of years, months and days (`P2Y`, `P13M`, `P90D`, `P1Y6M`)."""
    match = PERIOD.match(text)
    if match is None or not any(match.groups()):
        raise ValueError("a period is an ISO 8601 duration of years, months and days: P2Y, P13M, P90D")
    years, months, days = (int(g or 0) for g in match.groups())
    if years * 366 + months * 31 + days > 200 * 366:
        raise ValueError("a period is at most 200 years")
    if years == months == days == 0:
        raise ValueError("a period of zero would act on data as soon as it is written")
    return relativedelta(years=years, months=months, days=days)


def check_cron(text: str) -> str:
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ValueError("a schedule is a five-field cron expression, e.g. `0 3 * * *` (03:00 UTC every day)")
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ValueError("this schedule never fires (e.g. 31 February)") from None
    return text


class TableTarget(Strict):
    kind: Literal["table"]
    map: str = Field(pattern=MAP_KEY, description="The data map's key, e.g. `shop`")
    table: str = Field(
        max_length=300, pattern=r"^[A-Za-z0-9_$.-]{1,200}\.[A-Za-z_][A-Za-z0-9_$]{0,127}$", examples=["shop.customers"]
    )


class CategoryTarget(Strict):
    kind: Literal["category"]
    category: str = Field(max_length=128, pattern=CATEGORY, examples=["user.contact"])
    map: str | None = Field(default=None, pattern=MAP_KEY, description="One data map; default: every map")


class StoreTarget(Strict):
    kind: Literal["store"]
    store: Literal["ledger", "consents", "requests", "exports"]


Target = Annotated[TableTarget | CategoryTarget | StoreTarget, Field(discriminator="kind")]


class PolicyIn(Strict):
    name: Label
    target: Target
    period: str = Field(max_length=20, examples=["P2Y"], description="ISO 8601 duration: PnY, PnM, PnD")
    reference: str | None = Field(
        default=None,
        pattern=NAME,
        description="The column the period is counted from (created, last login, end of contract…); "
        "fixed for Gardien's own stores",
    )
    action: Literal["delete", "anonymise", "archive"]
    operators: dict[Annotated[str, Field(max_length=300)], OperatorSpec] = Field(
        default_factory=dict,
        max_length=64,
        description="anonymise: privacy operator per column or JSON path (`email`, `context.ip`); "
        "default: the fields' `anonymize` declarations in the data map",
    )
    legal_basis: str = Field(default="legal_obligation", max_length=100, pattern=r"^[a-z0-9_.-]{1,100}$")
    note: Text | None = None
    schedule: str | None = Field(default=None, max_length=100, examples=["0 3 * * *"])
    enabled: bool = True
    batch_size: int = Field(default=5_000, ge=1, le=50_000, description="Rows per transaction")

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        parse_period(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _coherent(self) -> PolicyIn:
        target = self.target
        if isinstance(target, StoreTarget):
            allowed = STORE_ACTIONS[target.store]
            if self.action not in allowed:
                raise ValueError(f"the {target.store} store allows the action {', '.join(allowed)} only")
            if self.reference not in (None, STORE_REFERENCE[target.store]):
                raise ValueError(f"the {target.store} store counts from {STORE_REFERENCE[target.store]}")
            if self.operators:
                raise ValueError("operators apply to host tables, not to Gardien's own stores")
            return self
        if self.action == "archive":
            raise ValueError(
                "archive applies to the ledger: host data is never copied into Gardien; delete or anonymise it"
            )
        if self.reference is None:
            raise ValueError("reference: name the column the period is counted from")
        if self.action == "delete" and self.operators:
            raise ValueError("operators belong to anonymise; delete removes the rows")
        try:
            RecordPolicy(dict(self.operators))
        except OperatorError as exc:
            raise ValueError(f"operators.{exc.field}: {exc}") from None
        return self

    def reference_column(self) -> str:
        if isinstance(self.target, StoreTarget):
            return STORE_REFERENCE[self.target.store]
        assert self.reference is not None
        return self.reference


class PolicyOut(BaseModel):
    id: str
    version: int
    policy: PolicyIn
    created_at: datetime
    updated_at: datetime
    last_scheduled_at: datetime | None
    next_run_at: datetime | None = Field(description="When the worker starts it next (schedule set and enabled)")


class PolicyList(BaseModel):
    items: list[PolicyOut]


class DefaultOut(BaseModel):
    key: str
    title: str
    period: str
    reference: str
    action: str
    legal_basis: str
    kind: Literal["law", "regulator", "choice"] = Field(
        description="law: a statute sets the period; regulator: a supervisory authority's good practice; "
        "choice: Gardien's choice, anchored on a statute that does not itself govern this data"
    )
    source: str


class DefaultList(BaseModel):
    items: list[DefaultOut]


class IdentityIn(Strict):
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$", examples=["email"])
    value: str = Field(min_length=1, max_length=500, pattern=NO_NUL)


class HoldIn(Strict):
    scope: Literal["organisation", "table", "subject"]
    target: str | None = Field(
        default=None,
        max_length=300,
        pattern=r"^[A-Za-z0-9_$.-]{1,300}$",
        description="table: `dataset.table` of a data map, or a Gardien store (ledger, consents, requests, "
        "exports); subject: the data map's key",
    )
    identity: IdentityIn | None = Field(default=None, description="subject: the person, as the data map knows them")
    reason: Annotated[str, Field(min_length=1, max_length=4000, pattern=NO_NUL)]
    owner: Label

    @model_validator(mode="after")
    def _scope(self) -> HoldIn:
        if self.scope == "organisation" and (self.target is not None or self.identity is not None):
            raise ValueError("an organisation hold takes no target and no identity")
        if self.scope == "table" and (self.target is None or self.identity is not None):
            raise ValueError("a table hold names its target (`dataset.table` or a store) and no identity")
        if self.scope == "table" and "." not in (self.target or "") and self.target not in STORES:
            raise ValueError(f"target: `dataset.table` or one of {', '.join(STORES)}")
        if self.scope == "subject" and (self.identity is None or self.target is None):
            raise ValueError("a subject hold names the data map (target) and the identity")
        if self.scope == "subject" and not re.match(MAP_KEY, self.target or ""):
            raise ValueError("target: a data map's key")
        return self


class HoldOut(BaseModel):
    id: str
    scope: str
    target: str | None
    identity: IdentityIn | None
    reason: str
    owner: str
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None


class HoldList(BaseModel):
    items: list[HoldOut]


class RunOut(BaseModel):
    id: str
    policy_id: str
    policy_version: int
    dry_run: bool
    trigger: str
    status: str
    cutoff: datetime
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, dict[str, int]] = Field(description="Per table: matched, deleted/anonymised/archived, held")
    samples: dict[str, list[list[Any]]] = Field(description="Per table: a few primary keys of affected rows")
    errors: list[str]
    batches: int


class RunList(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class QuotaIn(Strict):
    max_ledger_events: int | None = Field(default=None, ge=1, le=2**62)
    max_ledger_bytes: int | None = Field(default=None, ge=1, le=2**62)
    max_export_bytes: int | None = Field(default=None, ge=1, le=2**62)
    warn_ratio: int = Field(default=80, ge=1, le=100, description="Per cent of a limit at which to warn")


class UsageItem(BaseModel):
    measure: str
    used: int
    limit: int | None
    level: Literal["ok", "warn", "over"]


class QuotaOut(BaseModel):
    quota: QuotaIn
    usage: list[UsageItem]
