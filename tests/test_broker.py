"""The gateway's sans-IO broker, driven with plain calls: no sockets, no event loop. (The
conformance suite checks the same rules over real sockets.)"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from realtime_pubsub._protocol import (
    CLOSE_FORBIDDEN_PUBLISH,
    CLOSE_FORBIDDEN_SUBSCRIBE,
    READ_PERMISSION_PREFIX,
)
from realtime_pubsub.gateway._auth import Identity
from realtime_pubsub.gateway._broker import (
    TERMINATED,
    TERMINATED_REASON,
    Ack,
    Action,
    Broker,
    Close,
    Member,
    Send,
    matches_any,
    permits,
)
from realtime_pubsub.tokens import can_publish, can_read

EVERYTHING = (can_publish("*"), can_read("*"))


def join(
    broker: Broker,
    subject: str = "user",
    permissions: tuple[str, ...] = EVERYTHING,
    app_id: str = "app",
) -> Member:
    member, _ = broker.connect(app_id, Identity(subject, permissions), "127.0.0.1")
    return member


def frame(kind: str, **data: Any) -> bytes:
    return orjson.dumps({"type": kind, "data": data})


def subscribe(broker: Broker, member: Member, topic: str) -> list[Action]:
    return broker.receive(member.id, frame("subscribe", topic=topic))


def sends(actions: list[Action]) -> list[tuple[tuple[str, ...], dict[str, Any], bool]]:
    """The Send actions as (receivers, decoded frame, compress)."""
    return [
        (tuple(sorted(a.to)), orjson.loads(a.frame), a.compress)
        for a in actions
        if isinstance(a, Send)
    ]


def test_a_connection_gets_its_welcome_first() -> None:
    broker = Broker()
    member, actions = broker.connect("app", Identity("alice", ()), "10.0.0.1")
    [(to, welcome, compress)] = sends(actions)
    assert to == (member.id,)
    assert not compress
    assert welcome == {
        "topic": "main",
        "messageType": "welcome",
        "data": {"connection": {"id": member.id, "appId": "app", "remoteAddress": "10.0.0.1"}},
    }


def test_publish_fans_out_to_subscribers_and_acks_the_sender() -> None:
    broker = Broker()
    alice, bob, carol = join(broker, "alice"), join(broker, "bob"), join(broker, "carol")
    assert subscribe(broker, bob, "chat") == []
    assert subscribe(broker, carol, "chat") == []
    actions = broker.receive(
        alice.id, frame("publish", topic="chat", payload={"t": 1}, messageType="text", id="m1")
    )
    [(to, delivered, compress)] = sends(actions)
    assert to == tuple(sorted((bob.id, carol.id)))
    assert not compress
    assert delivered == {
        "topic": "chat",
        "messageType": "text",
        "data": {
            "client": {"connectionId": alice.id, "subject": "alice", "permissions": [*EVERYTHING]},
            "payload": {"t": 1},
            "id": "m1",
        },
    }
    [ack] = [a for a in actions if isinstance(a, Ack)]
    assert ack.to == alice.id
    assert orjson.loads(ack.frame) == {
        "topic": "priv/acks",
        "messageType": "ack",
        "data": {"data": "m1"},
    }


def test_no_ack_without_an_id_or_with_acks_off() -> None:
    broker = Broker()
    alice = join(broker)
    assert broker.receive(alice.id, frame("publish", topic="t", payload=1)) == []
    broker.acks = False
    assert broker.receive(alice.id, frame("publish", topic="t", payload=1, id="x")) == []


def test_compress_is_passed_on_to_the_io() -> None:
    broker = Broker()
    alice, bob = join(broker), join(broker)
    subscribe(broker, bob, "chat")
    actions = broker.receive(alice.id, frame("publish", topic="chat", payload=1, compress=True))
    assert [compress for _, _, compress in sends(actions)] == [True]


def test_send_reaches_secure_inbound_as_broadcast_by_default() -> None:
    broker = Broker()
    backend, caller = join(broker, "backend"), join(broker, "caller", ())
    subscribe(broker, backend, "secure/inbound")
    [(to, delivered, _)] = sends(broker.receive(caller.id, frame("message", payload="hi")))
    assert to == (backend.id,)
    assert delivered["topic"] == "secure/inbound"
    assert delivered["messageType"] == "broadcast"
    assert delivered["data"]["client"]["subject"] == "caller"


def test_presence_goes_to_the_apps_backends_when_a_connection_joins_and_leaves() -> None:
    broker = Broker()
    backend = join(broker, "backend")
    elsewhere = join(broker, "backend", app_id="other")
    subscribe(broker, backend, "secure/inbound")
    subscribe(broker, elsewhere, "secure/inbound")
    device, joined = broker.connect("app", Identity("device", ()), "127.0.0.1")
    [(to, presence, _)] = sends(joined)[1:]
    assert to == (backend.id,)
    assert presence["messageType"] == "presence"
    assert presence["data"]["payload"] == {"status": "connected"}
    [(to, presence, _)] = sends(broker.disconnect(device.id))
    assert to == (backend.id,)
    assert presence["data"]["payload"] == {"status": "disconnected"}
    assert presence["data"]["client"]["connectionId"] == device.id


@pytest.mark.parametrize(
    ("permissions", "topic", "allowed"),
    [
        ((), "news", True),
        ((), "secure/inbound", False),
        ((can_publish("*"),), "secure/inbound", False),
        ((can_read("secure/*"),), "secure/a/b", True),
        ((can_read("secure/in*"),), "secure/inbound", True),
        ((can_read("secure/other"),), "secure/inbound", False),
    ],
)
def test_secure_topics_need_a_read_permission(
    permissions: tuple[str, ...], topic: str, allowed: bool
) -> None:
    broker = Broker()
    member = join(broker, permissions=permissions)
    actions = subscribe(broker, member, topic)
    if allowed:
        assert actions == []
        assert member.subscriptions == {topic}
    else:
        assert actions == [Close(member.id, 1008, CLOSE_FORBIDDEN_SUBSCRIBE)]
        assert broker.member(member.id) is None


def test_another_connections_priv_topic_is_refused_like_a_secure_topic() -> None:
    broker = Broker()
    backend, caller, snoop = join(broker), join(broker), join(broker)
    assert subscribe(broker, snoop, f"priv/{caller.id}") == [
        Close(snoop.id, 1008, CLOSE_FORBIDDEN_SUBSCRIBE)
    ]
    assert broker.member(snoop.id) is None
    # Its own is subscribed from the start: asking again changes nothing.
    assert subscribe(broker, caller, f"priv/{caller.id}") == []
    assert caller.subscriptions == set()
    reply = frame(
        "publish", topic=f"priv/{caller.id}", payload={"id": "q"}, messageType="response"
    )
    [(to, _, _)] = sends(broker.receive(backend.id, reply))
    assert to == (caller.id,)


def test_any_priv_topic_but_ones_own_is_refused() -> None:
    broker = Broker()
    member = join(broker)
    [close, *_] = subscribe(broker, member, "priv/acks")
    assert close == Close(member.id, 1008, CLOSE_FORBIDDEN_SUBSCRIBE)


def test_publishing_needs_a_write_permission_except_to_priv() -> None:
    broker = Broker()
    member = join(broker, permissions=(can_publish("chat"),))
    assert broker.receive(member.id, frame("publish", topic="chat", payload=1)) == []
    assert broker.receive(member.id, frame("publish", topic="priv/x", payload=1)) == []
    actions = broker.receive(member.id, frame("publish", topic="chat/other", payload=1))
    assert actions == [Close(member.id, 1008, CLOSE_FORBIDDEN_PUBLISH)]


@pytest.mark.parametrize(
    ("data", "code", "reason_part"),
    [
        (b"not json", 1003, "JSON"),
        (b"[1]", 1003, "not a JSON object"),
        (b'{"type": "dance", "data": {}}', 1008, "unknown message type"),
        (b'{"type": "publish", "data": {"topic": "t"}}', 1008, "payload"),
    ],
)
def test_a_bad_frame_closes_its_sender_only(data: bytes, code: int, reason_part: str) -> None:
    broker = Broker()
    bystander, offender = join(broker), join(broker)
    [close] = broker.receive(offender.id, data)
    assert isinstance(close, Close)
    assert (close.connection_id, close.code) == (offender.id, code)
    assert reason_part in close.reason
    assert [m.id for m in broker.members()] == [bystander.id]


def test_frames_from_a_closed_or_unknown_connection_are_ignored() -> None:
    broker = Broker()
    member = join(broker)
    broker.receive(member.id, b"not json")
    assert broker.receive(member.id, frame("publish", topic="t", payload=1, id="x")) == []
    assert broker.receive("nobody", frame("publish", topic="t", payload=1, id="x")) == []
    assert broker.disconnect(member.id) == []


def test_apps_never_see_each_others_topics() -> None:
    broker = Broker()
    one, two = join(broker, app_id="one"), join(broker, app_id="two")
    subscribe(broker, one, "chat")
    assert sends(broker.receive(two.id, frame("publish", topic="chat", payload=1))) == []
    assert broker.count_subscribers("chat") == 1
    assert broker.count_subscribers("chat", "two") == 0


def test_unsubscribe_stops_delivery_but_keeps_the_private_topic() -> None:
    broker = Broker()
    alice, bob = join(broker), join(broker)
    subscribe(broker, bob, "chat")
    broker.receive(bob.id, frame("unsubscribe", topic="chat"))
    broker.receive(bob.id, frame("unsubscribe", topic=f"priv/{bob.id}"))
    assert sends(broker.receive(alice.id, frame("publish", topic="chat", payload=1))) == []
    reply = frame("publish", topic=f"priv/{bob.id}", payload=1)
    assert [to for to, _, _ in sends(broker.receive(alice.id, reply))] == [(bob.id,)]


def test_an_apps_state_goes_with_its_last_connection() -> None:
    broker = Broker()
    members = [join(broker, app_id=f"app-{i}") for i in range(100)]
    for member in members:
        subscribe(broker, member, "chat")
        subscribe(broker, member, "secure/inbound")
    assert len(broker.app_ids()) == 100
    for member in members:
        broker.disconnect(member.id)
    assert broker.app_ids() == []
    assert broker.count_members() == 0
    assert broker._apps == {}
    assert broker._members == {}


def test_generation_changes_with_membership_and_subscriptions_only() -> None:
    broker = Broker()
    seen = broker.generation
    alice = join(broker)
    assert broker.generation != seen
    seen = broker.generation
    broker.receive(alice.id, frame("publish", topic="t", payload=1))
    assert broker.generation == seen
    subscribe(broker, alice, "t")
    assert broker.generation != seen
    seen = broker.generation
    subscribe(broker, alice, "t")
    assert broker.generation == seen
    broker.disconnect(alice.id)
    assert broker.generation != seen


def test_counts_per_app() -> None:
    broker = Broker()
    join(broker, app_id="a")
    b = join(broker, app_id="b")
    subscribe(broker, b, "t")
    assert (broker.count_members(), broker.count_members("a"), broker.count_members("c")) == (
        2,
        1,
        0,
    )
    assert broker.count_subscribers("t", "b") == 1
    assert broker.count_subscribers("t", "zzz") == 0


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("*", "anything/at/all", True),
        ("secure/*", "secure/a/b", True),
        ("secure/in*", "secure/inbound", True),
        ("chat", "chat", True),
        ("chat", "chat/x", False),
        ("a.b", "axb", False),  # only * is special
    ],
)
def test_permission_patterns(pattern: str, topic: str, expected: bool) -> None:
    assert permits([READ_PERMISSION_PREFIX + pattern], READ_PERMISSION_PREFIX, topic) is expected


# --------------------------------------------------------------------------- the admin API


@pytest.mark.parametrize("message", ["hello", {"a": [1, 2]}, 3, [None]])
def test_an_admin_publish_delivers_the_raw_message_as_broadcast(message: Any) -> None:
    broker = Broker()
    bob, carol = join(broker), join(broker)
    subscribe(broker, bob, "news")
    subscribe(broker, carol, "news")
    join(broker, app_id="other")
    [(to, delivered, compress)] = sends(broker.publish_message("app", "news", message))
    assert to == tuple(sorted((bob.id, carol.id)))
    assert not compress
    assert delivered == {"topic": "news", "messageType": "broadcast", "data": message}


def test_an_admin_publish_passes_compress_on_and_is_never_acked() -> None:
    broker = Broker()
    bob = join(broker)
    subscribe(broker, bob, "news")
    actions = broker.publish_message("app", "news", "x", compress=True)
    assert [compress for _, _, compress in sends(actions)] == [True]
    assert not any(isinstance(a, Ack) for a in actions)


def test_an_admin_publish_reaches_only_its_apps_subscribers() -> None:
    broker = Broker()
    other = join(broker, app_id="other")
    subscribe(broker, other, "news")
    assert broker.publish_message("app", "news", "x") == []
    assert broker.publish_message("nowhere", "news", "x") == []
    [(to, _, _)] = sends(broker.publish_message("other", "news", "x"))
    assert to == (other.id,)


def test_unsubscribe_by_subject_removes_matching_topics_of_that_subject_only() -> None:
    broker = Broker()
    phone, laptop = join(broker, "alice"), join(broker, "alice")
    bob = join(broker, "bob")
    elsewhere = join(broker, "alice", app_id="other")
    for member in (phone, laptop, bob, elsewhere):
        for topic in ("chat/1", "chat/2", "news"):
            subscribe(broker, member, topic)
    seen = broker.generation
    assert broker.unsubscribe_subject("app", "alice", ["chat/*", "nothing"]) == 4
    assert broker.generation != seen
    assert phone.subscriptions == laptop.subscriptions == {"news"}
    assert bob.subscriptions == elsewhere.subscriptions == {"chat/1", "chat/2", "news"}
    assert broker.count_subscribers("chat/1", "app") == 1
    # Nothing is sent: the connections are not told. Their own priv/ topics stay.
    [(to, _, _)] = sends(broker.publish_message("app", f"priv/{phone.id}", 1))
    assert to == (phone.id,)
    assert broker.unsubscribe_subject("app", "alice", ["*"]) == 2
    assert broker.unsubscribe_subject("app", "nobody", ["*"]) == 0


def test_terminate_closes_one_connection_of_its_app_and_tells_the_backends() -> None:
    broker = Broker()
    backend, alice = join(broker, "backend"), join(broker, "alice")
    subscribe(broker, backend, "secure/inbound")
    assert broker.terminate("other", alice.id) == []
    assert broker.terminate("app", "unknown") == []
    [close, *presence] = broker.terminate("app", alice.id)
    assert close == Close(alice.id, TERMINATED, TERMINATED_REASON)
    [(to, event, _)] = sends(presence)
    assert to == (backend.id,)
    assert event["data"]["payload"] == {"status": "disconnected"}
    assert broker.member(alice.id) is None
    assert broker.terminate("app", alice.id) == []


def test_terminate_without_an_id_closes_every_connection_of_the_app_only() -> None:
    broker = Broker()
    members = [join(broker, f"user-{n}") for n in range(3)]
    other = join(broker, app_id="other")
    actions = broker.terminate("app")
    closed = {a.connection_id for a in actions if isinstance(a, Close)}
    assert closed == {m.id for m in members}
    assert {a.code for a in actions if isinstance(a, Close)} == {TERMINATED}
    assert [m.id for m in broker.members()] == [other.id]
    assert broker.terminate("app") == []


def test_topic_patterns_match_as_permission_patterns_do() -> None:
    assert matches_any(["chat/*", "news"], "chat/a/b")
    assert matches_any(["chat/*", "news"], "news")
    assert not matches_any(["chat/*", "news"], "news/x")
    assert not matches_any([], "news")
