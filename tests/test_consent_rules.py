"""The consent rules, with the numbers of the regulator rather than of the code.

CNIL recommendation 2020-092 calls keeping a choice (consent and refusal) six months good practice;
the repealed 2013-378 capped consent at thirteen months, which Gardien keeps as a hard cap. Months
are calendar months. An expired choice, or one made under an older notice, counts as not given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from gardien.audit.service import Ledger
from gardien.consent import rules
from gardien.consent.schemas import ChoiceIn, NoticeIn, SettingsIn, WithdrawIn
from gardien.consent.service import ClientContext, ConsentService
from gardien.consent.useragent import ua_class
from gardien.core.errors import Conflict, InvalidInput
from gardien.core.runtime import Runtime
from tests.consent_samples import sample_notice

ACTOR = {"type": "test", "id": "rules"}
SUBJECT = "7d1f0b0e-3a52-4c1e-9a4b-2f0c6a1d5e11"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))


@pytest.fixture
def consent(runtime: Runtime, org: str, clock: Clock) -> ConsentService:
    service = ConsentService(runtime, Ledger(runtime), clock=clock)
    service.create_notice(org, NoticeIn.model_validate(sample_notice()), ACTOR)
    return service


def choose(consent: ConsentService, org: str, method: str, **body: Any) -> dict[str, Any]:
    choice = ChoiceIn.model_validate({"consent_id": SUBJECT, "method": method, **body})
    gpc = method == "gpc"
    return consent.record(org, choice, ACTOR, ClientContext(gpc=gpc)).model_dump(mode="json")


def test_a_choice_is_kept_six_months_by_default(consent: ConsentService, org: str) -> None:
    assert SettingsIn().validity_months == 6
    state = choose(consent, org, "reject_all")
    # A refusal lasts as long as a consent: 10 March + 6 months = 10 September.
    assert state["expires_at"] == "2026-09-10T09:30:00Z"


@pytest.mark.parametrize("months", [1, 13])
def test_an_organisation_may_choose_one_to_thirteen_months(
    consent: ConsentService, org: str, clock: Clock, months: int
) -> None:
    consent.put_settings(org, SettingsIn(validity_months=months), ACTOR)
    state = choose(consent, org, "accept_all")
    expected = {1: "2026-04-10T09:30:00Z", 13: "2027-04-10T09:30:00Z"}[months]
    assert state["expires_at"] == expected


@pytest.mark.parametrize("months", [0, 14, 24])
def test_more_than_thirteen_months_or_none_is_refused(months: int) -> None:
    with pytest.raises(ValidationError) as refused:
        SettingsIn(validity_months=months)
    assert refused.value.errors()[0]["loc"] == ("validity_months",)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2026, 8, 31, 12, 0, tzinfo=UTC), datetime(2027, 2, 28, 12, 0, tzinfo=UTC)),
        (datetime(2027, 8, 31, 12, 0, tzinfo=UTC), datetime(2028, 2, 29, 12, 0, tzinfo=UTC)),  # leap year
        (datetime(2026, 1, 31, 0, 0, tzinfo=UTC), datetime(2026, 7, 31, 0, 0, tzinfo=UTC)),
    ],
)
def test_months_are_calendar_months(
    consent: ConsentService, org: str, clock: Clock, given: datetime, expected: datetime
) -> None:
    clock.now = given
    state = choose(consent, org, "accept_all")
    assert datetime.fromisoformat(state["expires_at"]) == expected


def test_a_choice_stops_counting_at_the_exact_instant_it_expires(
    consent: ConsentService, org: str, clock: Clock
) -> None:
    choose(consent, org, "accept_all")
    expires = datetime(2026, 9, 10, 9, 30, tzinfo=UTC)
    clock.now = expires - timedelta(microseconds=1)
    assert consent.is_allowed(org, SUBJECT, "analytics") is True
    clock.now = expires
    assert consent.is_allowed(org, SUBJECT, "analytics") is False
    assert consent.check(org, SUBJECT, "analytics").state == "not_given"
    assert consent.state(org, SUBJECT).status == "expired"


def test_a_new_notice_version_asks_everyone_again(consent: ConsentService, org: str) -> None:
    first = choose(consent, org, "accept_all")
    assert consent.is_allowed(org, SUBJECT, "marketing") is True
    consent.create_notice(org, NoticeIn.model_validate(sample_notice("v2")), ACTOR)
    assert consent.is_allowed(org, SUBJECT, "marketing") is False
    assert consent.state(org, SUBJECT).status == "outdated"
    # A banner still showing the first version cannot record under it any more.
    with pytest.raises(Conflict):
        choose(consent, org, "accept_all", notice_sha256=first["notice_sha256"])
    assert choose(consent, org, "accept_all")["notice_version"] == 2
    assert consent.is_allowed(org, SUBJECT, "marketing") is True


def test_each_method_sets_the_states_the_design_says(consent: ConsentService, org: str) -> None:
    everything = {"functional": "granted", "analytics": "granted", "marketing": "granted"}
    assert choose(consent, org, "accept_all")["states"] == everything
    refused = {"functional": "granted", "analytics": "denied", "marketing": "denied"}
    assert choose(consent, org, "reject_all")["states"] == refused
    assert choose(consent, org, "gpc")["states"] == refused
    custom = choose(consent, org, "custom", states={"analytics": "granted"})["states"]
    assert custom == {"functional": "granted", "analytics": "granted", "marketing": "denied"}
    api = choose(consent, org, "api", states={"marketing": "granted"})["states"]
    assert api == {"functional": "granted", "analytics": "not_presented", "marketing": "granted"}
    assert consent.check(org, SUBJECT, "analytics").state == "not_presented"
    assert consent.is_allowed(org, SUBJECT, "analytics") is False


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("custom", {"states": {"functional": "denied"}}, "states.functional"),
        ("custom", {"states": {"tracking": "granted"}}, "states.tracking"),
        ("accept_all", {"states": {"analytics": "granted"}}, "states"),
        ("gpc", {}, "method"),
        ("accept_all", {"notice_sha256": "0" * 64}, "notice_sha256"),
        ("accept_all", {"notice_version": 9}, "notice_version"),
    ],
)
def test_invalid_choices_are_refused_with_the_field(
    consent: ConsentService, org: str, method: str, body: dict[str, Any], field: str
) -> None:
    choice = ChoiceIn.model_validate({"consent_id": SUBJECT, "method": method, **body})
    with pytest.raises(InvalidInput) as refused:
        consent.record(org, choice, ACTOR)
    assert refused.value.extra["errors"][0]["field"] == field
    assert consent.is_allowed(org, SUBJECT, "analytics") is False


def test_withdrawal_denies_what_is_named_and_keeps_the_rest(consent: ConsentService, org: str) -> None:
    choose(consent, org, "accept_all")
    state = consent.withdraw(org, SUBJECT, WithdrawIn(purposes=["marketing"]), ACTOR)
    assert state.states == {"functional": "granted", "analytics": "granted", "marketing": "denied"}
    assert state.method == "withdraw"
    assert consent.withdraw(org, SUBJECT, WithdrawIn(), ACTOR).states["analytics"] == "denied"
    with pytest.raises(InvalidInput):
        consent.withdraw(org, SUBJECT, WithdrawIn(purposes=["functional"]), ACTOR)


def test_unknown_purpose_in_a_check_is_a_422(consent: ConsentService, org: str) -> None:
    choose(consent, org, "accept_all")
    with pytest.raises(InvalidInput):
        consent.is_allowed(org, SUBJECT, "tracking")
    assert consent.is_allowed(org, "never-seen", "functional") is False


def test_the_dpia_tag_follows_grants_and_revocations() -> None:
    essential = {"functional"}
    granted = rules.granted_non_essential({"functional": "granted", "analytics": "granted"}, essential)
    assert rules.dpia_event(granted, []) == "CONSENT_GRANTED"
    assert rules.dpia_event(rules.granted_non_essential({"functional": "granted"}, essential), []) is None
    revoked = rules.revoked({"analytics": "denied"}, {"analytics": "granted"})
    assert revoked == ["analytics"]
    assert rules.dpia_event([], revoked) == "CONSENT_REVOKED"
    assert rules.revoked({"analytics": "denied"}, None) == [], "a first refusal revokes nothing"


@pytest.mark.parametrize(
    ("address", "kept"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("testclient", None),
        (None, None),
    ],
)
def test_addresses_are_truncated_to_24_and_48_bits(address: str | None, kept: str | None) -> None:
    assert rules.truncate_ip(address) == kept


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/131.0 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("", "other"),
    ],
)
def test_user_agents_are_reduced_to_a_class(agent: str, kind: str) -> None:
    assert ua_class(agent) == kind
