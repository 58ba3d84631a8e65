"""Event schema details that have fast paths of their own."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gardien.audit.schemas import Source


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
