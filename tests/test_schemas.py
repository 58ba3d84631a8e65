"""Event schema details that have fast paths of their own."""

from __future__ import annotations

import copy
from ipaddress import IPv4Address, ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from gardien.audit.schemas import (
    Changes,
    ChangesDict,
    EventDict,
    EventIn,
    Party,
    PartyDict,
    Source,
    SourceDict,
    event_doc,
)
from gardien.audit.service import invalid_event, prepare_event
from gardien.core.errors import InvalidInput, TooLarge


def _reference(value: str) -> str | None:
    try:
        return str(ip_address(value))
    except ValueError:
        return None


def _ours(value: str) -> str | None:
    try:
        return Source(ip=value).ip
    except ValidationError:
        return None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_address_is_kept_in_canonical_form(number: int) -> None:
    text = str(IPv4Address(number))
    assert _ours(text) == text


@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
        st.ip_addresses().map(str),
        st.text(alphabet="0123456789.:abcdefABCDEF \n", max_size=20),
    )
)
def test_the_ip_fast_path_agrees_with_ipaddress(value: str) -> None:
    assert _ours(value) == _reference(value)


# --- events handed over as dicts: validated without models, exactly as the model validates ------

_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
_ID = st.text(min_size=1, max_size=8).filter(lambda text: "\x00" not in text)
_OPTIONAL_TEXT = st.one_of(st.none(), st.text(max_size=8))


def _party() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.sampled_from(["user", "service", "api_key"]), "id": _ID}, optional={"display": _OPTIONAL_TEXT}
    )


_VALID_EVENTS = st.fixed_dictionaries(
    {
        "module": st.sampled_from(["bookings", "auth"]),
        "action": st.sampled_from(["artist.update", "login"]),
        "crud": st.sampled_from(["create", "read", "update", "delete", "execute"]),
        "actor": _party(),
    },
    optional={
        "occurred_at": st.sampled_from([None, "2026-11-22T09:30:00Z", "2026-11-22T09:30:00.123456+01:00"]),
        "outcome": st.sampled_from(["success", "failure"]),
        "reason": _OPTIONAL_TEXT,
        "target": st.one_of(st.none(), _party()),
        "source": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "ip": st.sampled_from([None, "192.0.2.1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "::ffff:1.2.3.4"]),
                    "user_agent": _OPTIONAL_TEXT,
                },
            ),
        ),
        "request_id": st.one_of(st.none(), _ID),
        "changes": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"before": _JSONISH, "after": _JSONISH})),
        "data_categories": st.lists(st.sampled_from(["contact", "contact.email", "health"]), max_size=3),
        "legal_basis": st.sampled_from([None, "contract", "legal_obligation"]),
        "fields": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), _JSONISH, max_size=3)),
    },
)
# Values each member of the event, or of its parties, refuses at least in some place.
_BAD = st.sampled_from(
    [
        None,
        5,
        1.5,
        [],
        ["x"],
        {},
        {"type": "user"},
        "",
        "Bad Name!",
        "a..b",
        "x" * 3000,
        "\x00",
        "nope",
        "1960-01-01T00:00:00Z",
        "2026-11-22T09:30:00",
        "01.2.3.4",
        "upsert",
        "maybe",
        "Consent",
        "Bad-Cat",
    ]
)
_MEMBERS = [*EventIn.model_fields, "unknown"]


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    """Valid events, half of them with one member (or one member of a party) made bad."""
    event = draw(_VALID_EVENTS)
    if draw(st.booleans()):
        return event
    key = draw(st.sampled_from(_MEMBERS))
    inner = event.get(key)
    if isinstance(inner, dict) and draw(st.booleans()):
        event[key] = {
            **inner,
            draw(st.sampled_from(["type", "id", "display", "ip", "user_agent", "before", "other"])): draw(_BAD),
        }
    else:
        event[key] = draw(_BAD)
    return event


_EVENTS = _events()


def test_the_dict_schemas_name_the_same_members_as_the_models() -> None:
    pairs = [(EventIn, EventDict), (Party, PartyDict), (Source, SourceDict), (Changes, ChangesDict)]
    for model, typed in pairs:
        assert list(model.model_fields) == list(typed.__annotations__), model.__name__
        required = {name for name, info in model.model_fields.items() if info.is_required()}
        # (NotRequired is read by pydantic: the annotations are strings in that module.)
        assert set(TypeAdapter(typed).json_schema().get("required", [])) == required, model.__name__


@settings(max_examples=400, deadline=None)
@given(_EVENTS)
def test_an_event_dict_validates_as_the_model_and_gives_its_dump(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    try:
        model = EventIn.model_validate(event)
    except ValidationError:
        with pytest.raises(ValidationError):
            event_doc(event)
    else:
        doc, occurred_at = event_doc(event)
        assert doc == model.model_dump(exclude_none=True, exclude={"occurred_at"})
        assert occurred_at == model.occurred_at
    assert event == before  # the caller's dict is left as it was


def _outcome(event: EventIn | dict[str, Any], max_bytes: int) -> Any:
    try:
        return prepare_event(event, max_bytes, field="events.3")
    except (InvalidInput, TooLarge) as exc:
        return type(exc), exc.detail, exc.extra


@settings(max_examples=300, deadline=None)
@given(_EVENTS, st.sampled_from([300, 65_536]))
def test_preparing_an_event_dict_is_preparing_its_model(event: dict[str, Any], max_bytes: int) -> None:
    try:
        model = EventIn.model_validate(event)
    except ValidationError as exc:
        error = invalid_event(exc, "events.3")
        assert _outcome(event, max_bytes) == (InvalidInput, error.detail, error.extra)
        return
    assert _outcome(event, max_bytes) == _outcome(model, max_bytes)


def test_members_that_are_models_already_are_accepted_in_a_dict() -> None:
    event = {"module": "m", "action": "a.b", "crud": "read", "actor": Party(type="user", id="u-1")}
    prepared = prepare_event(event, 65_536)
    assert prepared.doc["actor"] == {"type": "user", "id": "u-1"}
