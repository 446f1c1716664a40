"""Tests for asyncws.topics: validation, MQTT matching and the subscription index."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncws.exceptions import InvalidTopicError
from asyncws.topics import (
    DEFAULT_LIMITS,
    TopicIndex,
    TopicLimits,
    is_pattern,
    matches,
    topic_matches,
    validate_pattern,
    validate_topic,
)

# -- a reference matcher: short and obviously correct -----------------------------------------


def reference_match(topic: str, pattern: str) -> bool:
    """MQTT matching for a valid pattern, written independently of asyncws.topics."""
    t = topic.split("/")
    p = pattern.split("/")
    if p[-1] == "#":
        prefix = p[:-1]
        if len(t) < len(prefix):
            return False
    else:
        prefix = p
        if len(t) != len(prefix):
            return False
    return all(pl == "+" or pl == tl for pl, tl in zip(prefix, t, strict=False))


def reference_subscribers(subscriptions: dict[int, set[str]], topic: str) -> set[int]:
    return {
        sub
        for sub, patterns in subscriptions.items()
        if any(reference_match(topic, p) for p in patterns)
    }


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    ["a", "a/b/c", "a//b", "/a", "a/", "/", "//", " ", "sport/tennis/player1", "é/ü", "$SYS/x"],
)
def test_valid_topics(topic: str) -> None:
    assert validate_topic(topic) == topic
    assert validate_pattern(topic) == topic  # a concrete topic is also a valid pattern


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "empty"),
        ("a/+", "wildcards"),
        ("+", "wildcards"),
        ("#", "wildcards"),
        ("a/#", "wildcards"),
        ("a+", "wildcards"),
        ("a#b", "wildcards"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\tb", "control"),
        ("\x1f", "control"),
        ("a\x7f", "control"),
        ("a\ud800", "control"),
    ],
)
def test_invalid_topics(topic: str, message: str) -> None:
    with pytest.raises(InvalidTopicError, match=message) as info:
        validate_topic(topic)
    assert info.value.code == "invalid_topic"
    assert len(info.value.message) < 80


@pytest.mark.parametrize(
    "pattern",
    ["#", "+", "+/+", "/+", "+/", "a/#", "a/+/b", "+/#", "a//+/#", "sport/tennis/+", "/#"],
)
def test_valid_patterns(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("a+", "'\\+' must occupy a whole level"),
        ("a/+b", "'\\+' must occupy a whole level"),
        ("++", "'\\+' must occupy a whole level"),
        ("a/b#", "'#' must occupy a whole level"),
        ("##", "'#' must occupy a whole level"),
        ("#/a", "'#' must be the last level"),
        ("a/#/b", "'#' must be the last level"),
        ("#/#", "'#' must be the last level"),
        ("a/#/", "'#' must be the last level"),
        ("a/\x00", "control"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(InvalidTopicError, match=message):
        validate_pattern(pattern)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"a/b", ["a"], {"topic": "a"}, True, object()])
def test_non_string_input_is_invalid_not_type_error(value: object) -> None:
    with pytest.raises(InvalidTopicError, match="must be a string"):
        validate_topic(value)
    with pytest.raises(InvalidTopicError, match="must be a string"):
        validate_pattern(value)


def test_default_limits() -> None:
    assert (DEFAULT_LIMITS.max_length, DEFAULT_LIMITS.max_levels) == (256, 16)
    validate_topic("a" * 256)
    validate_pattern("a" * 254 + "/+")
    with pytest.raises(InvalidTopicError, match="longer than 256"):
        validate_topic("a" * 257)
    with pytest.raises(InvalidTopicError, match="longer than 256"):
        validate_pattern("a" * 255 + "/#")
    validate_topic("/".join(["a"] * 16))
    validate_pattern("/".join(["+"] * 15) + "/#")
    with pytest.raises(InvalidTopicError, match="more than 16 levels"):
        validate_topic("/".join(["a"] * 17))
    with pytest.raises(InvalidTopicError, match="more than 16 levels"):
        validate_pattern("/".join(["+"] * 16) + "/#")
    with pytest.raises(InvalidTopicError, match="more than 16 levels"):
        validate_topic("/" * 16)  # 17 empty levels


def test_custom_limits() -> None:
    limits = TopicLimits(max_length=5, max_levels=2)
    assert validate_topic("ab/cd", limits) == "ab/cd"
    with pytest.raises(InvalidTopicError, match="longer than 5"):
        validate_topic("abcdef", limits)
    with pytest.raises(InvalidTopicError, match="more than 2 levels"):
        validate_pattern("a/b/#", limits)
    with pytest.raises(ValueError):
        TopicLimits(max_length=0)
    with pytest.raises(ValueError):
        TopicLimits(max_levels=0)
    with pytest.raises(AttributeError):
        limits.max_length = 10  # type: ignore[misc]


def test_length_is_counted_in_characters() -> None:
    limits = TopicLimits(max_length=4)
    assert validate_topic("éééé", limits) == "éééé"  # 8 bytes in UTF-8
    with pytest.raises(InvalidTopicError):
        validate_topic("ééééé", limits)


def test_deep_input_never_recurses() -> None:
    deep = "a/" * 100_000
    with pytest.raises(InvalidTopicError):
        validate_topic(deep)
    with pytest.raises(InvalidTopicError):
        validate_pattern(deep + "#")
    # Even with limits that let it through, nothing recurses.
    huge = TopicLimits(max_length=10**6, max_levels=10**6)
    assert validate_topic(deep, huge) == deep
    assert validate_pattern("+/" * 100_000 + "#", huge)
    with pytest.raises(InvalidTopicError, match="last level"):
        validate_pattern("#/" * 100_000, huge)


def test_topic_matches_deep_topics_does_not_recurse() -> None:
    levels = 100_000
    assert levels > sys.getrecursionlimit()
    topic = "/".join(["a"] * levels)
    assert topic_matches(topic, "/".join(["+"] * levels))
    assert topic_matches(topic, "/".join(["+"] * (levels - 1)) + "/#")
    assert topic_matches(topic, "a/#")
    assert not topic_matches(topic, "/".join(["+"] * (levels + 1)))
    assert not topic_matches(topic, "/".join(["a"] * (levels - 1)) + "/b")


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "pattern", "expected"),
    [
        # MQTT 3.1.1, section 4.7.1.2 (multi-level wildcard)
        ("sport/tennis/player1", "sport/tennis/player1/#", True),
        ("sport/tennis/player1/ranking", "sport/tennis/player1/#", True),
        ("sport/tennis/player1/score/wimbledon", "sport/tennis/player1/#", True),
        ("sport", "sport/#", True),
        ("sport/tennis", "sport/#", True),
        ("sports", "sport/#", False),
        ("sport", "#", True),
        ("a/b/c/d", "#", True),
        ("/", "#", True),
        ("/finance", "#", True),
        # section 4.7.1.3 (single-level wildcard)
        ("sport/tennis", "sport/tennis/+", False),
        ("sport/tennis/player1", "sport/tennis/+", True),
        ("sport/tennis/player2", "sport/tennis/+", True),
        ("sport/tennis/player1/ranking", "sport/tennis/+", False),
        ("sport", "sport/+", False),
        ("sport/", "sport/+", True),
        ("sport/tennis/player1", "sport/+", False),
        ("sport", "+", True),
        ("/finance", "+/+", True),
        ("/finance", "/+", True),
        ("/finance", "+", False),
        ("sport/tennis/player1", "+/tennis/#", True),
        ("sport/football/player1", "+/tennis/#", False),
        ("sport/tennis/player1", "sport/+/player1", True),
        ("sport//player1", "sport/+/player1", True),
        # empty levels and literal levels
        ("a//b", "a//b", True),
        ("a//b", "a/b", False),
        ("a/", "a", False),
        ("a/", "a/#", True),
        ("a", "a/+", False),
        ("a", "a/+/#", False),
        ("a/b", "a/+/#", True),
        ("Sport", "sport", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_matches_examples(topic: str, pattern: str, expected: bool) -> None:
    assert topic_matches(topic, pattern) is expected
    assert matches(topic, [pattern]) is expected
    index: TopicIndex[str] = TopicIndex()
    index.add(pattern, "s")
    assert index.match(topic) == ({"s"} if expected else set())


@pytest.mark.parametrize(
    ("topic", "pattern"), [("a/b", "#/b"), ("a/x/b", "a/#/b"), ("a/b", "a/#/#"), ("#/b", "#/b")]
)
def test_topic_matches_non_final_hash_matches_nothing(topic: str, pattern: str) -> None:
    assert not topic_matches(topic, pattern)
    assert not matches(topic, [pattern])


def test_matches_seed_api() -> None:
    assert matches("chat/room1", ["news", "chat/+"])
    assert matches("chat/room1", iter(["chat/room1"]))
    assert not matches("chat/room1", [])
    assert not matches("chat/room1", ["chat", "chat/room2", "+/+/+"])
    assert matches("chat/room1", (p for p in ["x", "#"]))


@pytest.mark.parametrize(
    "pattern", ["a/#/b", "#/room1", "chat/room1+", "chat/+x", "", "chat/\x00", "a" * 300]
)
def test_matches_ignores_invalid_patterns(pattern: str) -> None:
    assert not matches("chat/room1", [pattern])
    assert matches("chat/room1", [pattern, "chat/room1"])


def test_matches_never_raises() -> None:
    bad: list[object] = [None, 1, b"chat/room1", ["chat/room1"], "chat/room1+"]
    assert not matches("chat/room1", bad)  # type: ignore[arg-type]
    assert matches("chat/room1", [*bad, "chat/+"])  # type: ignore[list-item]
    assert not matches(None, ["#"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("a", False),
        ("a/b", False),
        ("", False),
        ("a+", False),
        ("a/b#", False),
        ("+", True),
        ("#", True),
        ("a/+", True),
        ("a/#", True),
        ("+/b", True),
        ("a/+/b", True),
    ],
)
def test_is_pattern(s: str, expected: bool) -> None:
    assert is_pattern(s) is expected


# -- TopicIndex --------------------------------------------------------------------------------


class Conn:
    """A stand-in for Connection: hashed by identity."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Conn({self.name})"


def test_index_empty() -> None:
    index: TopicIndex[Conn] = TopicIndex()
    assert len(index) == 0
    assert index.node_count() == 1  # the root only
    assert index.match("a/b") == set()
    assert index.patterns() == []
    assert not index.has_pattern("a")
    assert index.subscribers("a") == frozenset()


def test_index_add_remove_and_queries() -> None:
    index: TopicIndex[Conn] = TopicIndex()
    c1, c2, c3 = Conn("1"), Conn("2"), Conn("3")
    assert index.add("chat/room1", c1)
    assert not index.add("chat/room1", c1)
    assert index.add("chat/room1", c2)
    assert index.add("chat/+", c1)  # overlaps with chat/room1
    assert index.add("#", c3)
    assert len(index) == 3
    assert sorted(index.patterns()) == ["#", "chat/+", "chat/room1"]
    assert index.has_pattern("chat/+")
    assert "chat/+" in index
    assert not index.has_pattern("chat/room2")
    assert index.subscribers("chat/room1") == {c1, c2}
    assert index.subscribers("chat/+") == {c1}

    result = index.match("chat/room1")
    assert result == {c1, c2, c3}
    assert len(result) == 3  # c1 once, though two of its patterns match
    result.clear()  # the caller owns the result
    assert index.match("chat/room1") == {c1, c2, c3}
    assert index.match("chat/room2") == {c1, c3}
    assert index.match("news") == {c3}

    assert index.remove("chat/room1", c1)
    assert not index.remove("chat/room1", c1)
    assert not index.remove("never", c1)
    assert index.match("chat/room1") == {c1, c2, c3}  # c1 still via chat/+
    index.remove_all(c1, ["chat/+", "chat/room1", "unknown"])
    assert index.match("chat/room1") == {c2, c3}
    assert not index.has_pattern("chat/+")
    index.remove_all(c2, ["chat/room1"])
    index.remove_all(c3, ["#"])
    assert len(index) == 0
    assert index.node_count() == 1


def test_index_concrete_patterns_take_no_trie_nodes() -> None:
    index: TopicIndex[int] = TopicIndex()
    for i in range(1000):
        index.add(f"user/{i}/inbox", i)
    assert index.node_count() == 1
    assert index.match("user/7/inbox") == {7}
    index.add("user/+/inbox", -1)
    assert index.node_count() == 4  # root, user, +, inbox
    assert index.match("user/7/inbox") == {7, -1}


def test_index_prunes_nodes_after_churn() -> None:
    index: TopicIndex[int] = TopicIndex()
    for round_ in range(3):
        for i in range(200):
            index.add(f"a/{i}/+/#", i)
            index.add(f"+/{i}/b", i)
            index.add("a/+/#", i)
        assert index.node_count() > 1
        assert len(index) == 401
        for i in range(200):
            assert index.remove(f"a/{i}/+/#", i)
            assert index.remove(f"+/{i}/b", i)
            assert index.remove("a/+/#", i), round_
        assert len(index) == 0
        assert index.node_count() == 1


def test_index_shared_prefixes_survive_partial_removal() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a/b/#", "x")
    index.add("a/b/c", "y")
    index.add("a/b/+", "z")
    index.add("a/#", "w")
    index.remove("a/b/#", "x")
    assert index.match("a/b/c") == {"y", "z", "w"}
    index.remove("a/#", "w")
    assert index.match("a/b/c") == {"y", "z"}
    assert index.match("a/b") == set()
    index.remove("a/b/+", "z")
    assert index.node_count() == 1
    assert index.match("a/b/c") == {"y"}


def test_index_rejects_malformed_wildcard_pattern_without_changing() -> None:
    index: TopicIndex[str] = TopicIndex()
    with pytest.raises(InvalidTopicError):
        index.add("a/#/b", "x")
    assert len(index) == 0
    assert index.node_count() == 1


def test_index_clear() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a/+", "x")
    index.add("a/b", "y")
    index.clear()
    assert len(index) == 0
    assert index.node_count() == 1
    assert index.match("a/b") == set()


def test_index_deep_topic_does_not_recurse() -> None:
    index: TopicIndex[str] = TopicIndex()
    deep = "/".join(["a"] * 100_000)
    index.add("a/#", "x")
    index.add("/".join(["+"] * 100_000), "y")
    index.add("+/+", "z")
    assert index.match(deep) == {"x", "y"}
    assert index.remove("/".join(["+"] * 100_000), "y")
    assert index.node_count() == 4  # root, a, + and its + child


# -- property-based tests ----------------------------------------------------------------------

LEVELS = st.sampled_from(["", "a", "b", "c"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=6).map("/".join).filter(bool)  # not ""


@st.composite
def patterns(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.sampled_from(["", "a", "b", "c", "+"]), min_size=0, max_size=5))
    if not levels or draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "+"  # [""] would give the invalid empty pattern


def any_patterns() -> st.SearchStrategy[str]:
    """Valid patterns, mostly with wildcards, sometimes concrete."""
    return st.one_of(patterns(), TOPICS)


@settings(max_examples=600, deadline=None)
@given(topic=TOPICS, pattern=any_patterns())
def test_topic_matches_agrees_with_reference(topic: str, pattern: str) -> None:
    assert validate_topic(topic) == topic
    assert validate_pattern(pattern) == pattern
    expected = reference_match(topic, pattern)
    assert topic_matches(topic, pattern) is expected
    assert matches(topic, [pattern]) is expected


@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, pattern=st.text(alphabet="ab/+#", max_size=8))
def test_topic_matches_never_raises_on_arbitrary_patterns(topic: str, pattern: str) -> None:
    result = topic_matches(topic, pattern)
    try:
        validate_pattern(pattern)
    except InvalidTopicError:
        assert not matches(topic, [pattern])
    else:
        assert result is reference_match(topic, pattern)


OPS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 5), any_patterns()),
    max_size=40,
)


def apply_ops(
    index: TopicIndex[int],
    reference: dict[int, set[str]],
    ops: Iterable[tuple[bool, int, str]],
) -> None:
    for is_add, sub, pattern in ops:
        held = reference.setdefault(sub, set())
        if is_add:
            assert index.add(pattern, sub) is (pattern not in held)
            held.add(pattern)
        else:
            assert index.remove(pattern, sub) is (pattern in held)
            held.discard(pattern)


@settings(max_examples=250, deadline=None)
@given(ops=OPS, topics=st.lists(TOPICS, min_size=1, max_size=10))
def test_index_agrees_with_reference(ops: list[tuple[bool, int, str]], topics: list[str]) -> None:
    index: TopicIndex[int] = TopicIndex()
    reference: dict[int, set[str]] = {}
    apply_ops(index, reference, ops)

    held = {p for ps in reference.values() for p in ps}
    assert len(index) == len(held)
    assert sorted(index.patterns()) == sorted(held)
    for pattern in held | {p for _, _, p in ops}:
        subs = {s for s, ps in reference.items() if pattern in ps}
        assert index.subscribers(pattern) == subs
        assert index.has_pattern(pattern) is bool(subs)
    for topic in topics:
        assert index.match(topic) == reference_subscribers(reference, topic)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, topics=st.lists(TOPICS, max_size=5))
def test_index_is_empty_after_removing_everything(
    ops: list[tuple[bool, int, str]], topics: list[str]
) -> None:
    index: TopicIndex[int] = TopicIndex()
    reference: dict[int, set[str]] = {}
    apply_ops(index, reference, ops)
    for sub, held in reference.items():
        index.remove_all(sub, list(held))
    assert len(index) == 0
    assert index.patterns() == []
    assert index.node_count() == 1
    for topic in topics:
        assert index.match(topic) == set()
