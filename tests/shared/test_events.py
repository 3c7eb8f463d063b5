"""Events: the arguments hash approvals bind to, and the wire round trip."""

import pytest
from pydantic import ValidationError

from shared.events import (
    Actor,
    CallRequested,
    CallSpec,
    arguments_hash,
    derived_id,
    encode_event,
    parse_event,
)


def test_key_order_and_whitespace_do_not_change_the_hash() -> None:
    assert arguments_hash({"a": 1, "b": {"x": [1, 2], "y": "z"}}) == arguments_hash(
        {"b": {"y": "z", "x": [1, 2]}, "a": 1}
    )


@pytest.mark.parametrize("changed", [{"a": 2}, {"a": 1, "b": None}, {"a": "1"}, {"A": 1}, {"a": 1.5}])
def test_any_value_change_changes_the_hash(changed: dict[str, object]) -> None:
    assert arguments_hash({"a": 1}) != arguments_hash(changed)


def test_events_round_trip_through_their_wire_form() -> None:
    spec = CallSpec(
        integration_id="gh",
        tool_name="t",
        arguments={"k": "v"},
        args_hash=arguments_hash({"k": "v"}),
        actor=Actor(kind="api_key", id="k1", name="agent"),
    )
    event = CallRequested(org_id="o", call_id="c", spec=spec)
    assert parse_event(encode_event(event)) == event


def test_events_are_immutable_and_strict() -> None:
    event = CallRequested(
        org_id="o",
        call_id="c",
        spec=CallSpec(
            integration_id="gh",
            tool_name="t",
            arguments={},
            args_hash="h",
            actor=Actor(kind="system", id="s", name="s"),
        ),
    )
    with pytest.raises(ValidationError):
        event.call_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        parse_event(b'{"type": "call.requested", "org_id": "o", "call_id": "c", "spec": {}, "surprise": 1}')


def test_derived_ids_are_stable_so_retries_publish_once() -> None:
    assert derived_id("call-1", "ruled") == derived_id("call-1", "ruled")
    assert derived_id("call-1", "ruled") != derived_id("call-1", "outcome")


def test_nul_characters_are_found_anywhere_and_replaced_for_storage() -> None:
    from shared.events import contains_nul, without_nul

    clean = {"a": [1, "x", {"b": None}], "c": 2.5}
    dirty = {"a": [1, "x\u0000", {"b\u0000": True}]}
    assert not contains_nul(clean)
    assert contains_nul(dirty) and contains_nul(["\u0000"]) and contains_nul({"\u0000": 1})
    assert without_nul(dirty) == {"a": [1, "x\ufffd", {"b\ufffd": True}]}
    assert without_nul(clean) == clean
