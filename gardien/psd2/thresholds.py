"""The RTS figures as versioned data: every amount, rate and count the rules compare against.

The figures live in a JSON file beside this module, one file per version of the regulation, so
that the day PSD3/PSR replaces them a new file is added and the old decisions stay explainable:
each decision names the rule set it was taken under. Nothing in `rules.py` hard-codes a figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

DEFAULT_RULESET = "rts_2018_389"


@dataclass(frozen=True, slots=True)
class CounterLimits:
    """A single-payment cap and the two alternative limits on what came before since the last SCA."""

    article: str
    single_max_eur: Decimal
    cumulative_max_eur: Decimal
    consecutive_max: int
    # Whether the text counts the payments themselves (Art. 11(c)) or only the "previous" ones (16(c)).
    count_includes_current: bool


@dataclass(frozen=True, slots=True)
class TraBand:
    """One row of the Annex: an exemption threshold value and its reference fraud rate in percent."""

    etv_eur: Decimal
    reference_rate_percent: Decimal


@dataclass(frozen=True, slots=True)
class RuleSet:
    id: str
    title: str
    applies_from: str
    account_information_max_age_days: int
    account_information_renewal_days: int
    contactless: CounterLimits
    low_value: CounterLimits
    unattended_purposes: frozenset[str]
    tra_bands: dict[str, tuple[TraBand, ...]]
    suspend_after_quarters_above: int
    resume_after_quarters_within: int
    max_failed_attempts: int
    inactivity_timeout_seconds: int


def _limits(raw: dict[str, Any]) -> CounterLimits:
    return CounterLimits(
        article=raw["article"],
        single_max_eur=Decimal(raw["single_max_eur"]),
        cumulative_max_eur=Decimal(raw["cumulative_max_eur"]),
        consecutive_max=int(raw["consecutive_max"]),
        count_includes_current=bool(raw["count_includes_current"]),
    )


def parse_ruleset(raw: dict[str, Any]) -> RuleSet:
    """Build a rule set from its JSON form; bands are kept in ascending order of ETV."""
    tra = raw["transaction_risk_analysis"]
    bands = {
        instrument: tuple(
            sorted(
                (TraBand(Decimal(b["etv_eur"]), Decimal(b["reference_rate_percent"])) for b in rows),
                key=lambda band: band.etv_eur,
            )
        )
        for instrument, rows in tra["annex_bands"].items()
    }
    info = raw["account_information"]
    auth = raw["authentication"]
    return RuleSet(
        id=raw["id"],
        title=raw["title"],
        applies_from=raw["applies_from"],
        account_information_max_age_days=int(info["transactions_max_age_days"]),
        account_information_renewal_days=int(info["sca_renewal_days"]),
        contactless=_limits(raw["contactless_pos"]),
        low_value=_limits(raw["low_value_remote"]),
        unattended_purposes=frozenset(raw["unattended_terminal"]["purposes"]),
        tra_bands=bands,
        suspend_after_quarters_above=int(tra["suspend_after_quarters_above"]),
        resume_after_quarters_within=int(tra["resume_after_quarters_within"]),
        max_failed_attempts=int(auth["max_failed_attempts"]),
        inactivity_timeout_seconds=int(auth["inactivity_timeout_seconds"]),
    )


@cache
def load_ruleset(name: str = DEFAULT_RULESET) -> RuleSet:
    """The packaged rule set `name` (a JSON file in this package)."""
    text = resources.files("gardien.psd2").joinpath(f"{name}.json").read_text(encoding="utf-8")
    return parse_ruleset(json.loads(text))
