"""Topics, subscription patterns and the subscription index (MQTT semantics).

Matching rules
--------------

* A **topic** (what a message is published on) is a non-empty string of *levels* separated by
  ``/``. Empty levels are allowed, as in MQTT: ``a//b``, ``/a`` and ``a/`` are valid topics
  (``/a`` has the levels ``""`` and ``"a"``). A topic must not contain ``+`` or ``#``.
* A **pattern** (what a connection subscribes to) is a topic that may also use two wildcards,
  each only as a whole level:

  - ``+`` matches exactly one level, whatever it holds (also an empty one): ``sport/+``
    matches ``sport/tennis`` and ``sport/`` but not ``sport`` nor ``sport/tennis/player1``;
  - ``#`` matches zero or more levels and must be the last level: ``sport/#`` matches
    ``sport``, ``sport/tennis`` and ``sport/tennis/player1``; ``#`` alone matches every topic.

  ``a+``, ``a/b#``, ``#/a`` and ``a/#/b`` are invalid patterns.
* Every other level matches only an identical level (case-sensitive, no normalisation).
* Topics and patterns are limited in length (characters) and number of levels
  (`TopicLimits`), and must not contain control characters (U+0000 to U+001F, U+007F) or lone
  surrogates (which cannot be encoded to UTF-8 for a broker).

Topics starting with ``$`` get no special treatment (unlike MQTT brokers' ``$SYS`` rule).

`validate_topic` and `validate_pattern` check client input and raise `InvalidTopicError`
(with a short message that is safe to send back) for anything invalid, including values that
are not strings. `topic_matches` and `matches` answer whether a topic matches patterns.
`TopicIndex` holds the subscriptions of many subscribers and finds those a topic reaches at a
cost that depends on the topic's depth and the matching subscriptions only.

Nothing here recurses: arbitrarily deep input never raises `RecursionError`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .exceptions import InvalidTopicError

__all__ = [
    "DEFAULT_LIMITS",
    "MULTI_LEVEL_WILDCARD",
    "SEPARATOR",
    "SINGLE_LEVEL_WILDCARD",
    "TopicIndex",
    "TopicLimits",
    "is_pattern",
    "matches",
    "topic_matches",
    "validate_pattern",
    "validate_topic",
]

SEPARATOR = "/"
SINGLE_LEVEL_WILDCARD = "+"
MULTI_LEVEL_WILDCARD = "#"

T = TypeVar("T", bound=Hashable)

# Control characters and lone surrogates (json.loads accepts "\ud800"; UTF-8 cannot encode it).
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """Upper bounds for topics and patterns: length in characters and number of levels."""

    max_length: int = 256
    max_levels: int = 16

    def __post_init__(self) -> None:
        if self.max_length < 1 or self.max_levels < 1:
            raise ValueError("TopicLimits values must be at least 1")


DEFAULT_LIMITS = TopicLimits()


def _check_common(value: object, what: str, limits: TopicLimits) -> str:
    """The checks shared by topics and patterns; returns ``value`` as a ``str``."""
    if not isinstance(value, str):
        raise InvalidTopicError(f"{what} must be a string")
    if not value:
        raise InvalidTopicError(f"{what} must not be empty")
    if len(value) > limits.max_length:
        raise InvalidTopicError(f"{what} is longer than {limits.max_length} characters")
    if _FORBIDDEN_CHARS.search(value) is not None:
        raise InvalidTopicError(f"{what} must not contain control characters")
    # Counting separators allocates nothing, unlike split().
    if value.count(SEPARATOR) >= limits.max_levels:
        raise InvalidTopicError(f"{what} has more than {limits.max_levels} levels")
    return value


def validate_topic(topic: object, limits: TopicLimits = DEFAULT_LIMITS) -> str:
    """Return ``topic`` if it is a valid topic to publish on, else raise `InvalidTopicError`."""
    value = _check_common(topic, "topic", limits)
    if SINGLE_LEVEL_WILDCARD in value or MULTI_LEVEL_WILDCARD in value:
        raise InvalidTopicError("a topic must not contain wildcards ('+' or '#')")
    return value


def validate_pattern(pattern: object, limits: TopicLimits = DEFAULT_LIMITS) -> str:
    """Return ``pattern`` if it is a valid subscription pattern, else raise `InvalidTopicError`."""
    value = _check_common(pattern, "pattern", limits)
    if SINGLE_LEVEL_WILDCARD not in value and MULTI_LEVEL_WILDCARD not in value:
        return value
    levels = value.split(SEPARATOR)
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if level == SINGLE_LEVEL_WILDCARD:
            continue
        if level == MULTI_LEVEL_WILDCARD:
            if i != last:
                raise InvalidTopicError("'#' must be the last level")
            continue
        if SINGLE_LEVEL_WILDCARD in level:
            raise InvalidTopicError("'+' must occupy a whole level")
        if MULTI_LEVEL_WILDCARD in level:
            raise InvalidTopicError("'#' must occupy a whole level")
    return value


def is_pattern(s: str) -> bool:
    """Whether ``s`` has a wildcard level (``+`` or ``#``), i.e. is not a concrete topic."""
    if SINGLE_LEVEL_WILDCARD not in s and MULTI_LEVEL_WILDCARD not in s:
        return False
    for level in s.split(SEPARATOR):
        if level in (SINGLE_LEVEL_WILDCARD, MULTI_LEVEL_WILDCARD):
            return True
    return False


def topic_matches(topic: str, pattern: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (see the module's rules). Validates nothing.

    A ``#`` level that is not the pattern's last level makes the pattern match nothing; any
    other level containing a wildcard character is compared literally.
    """
    if SINGLE_LEVEL_WILDCARD not in pattern and MULTI_LEVEL_WILDCARD not in pattern:
        return topic == pattern
    t_levels = topic.split(SEPARATOR)
    p_levels = pattern.split(SEPARATOR)
    n_topic = len(t_levels)
    last = len(p_levels) - 1
    for i, level in enumerate(p_levels):
        if level == MULTI_LEVEL_WILDCARD:
            # Matches the rest, possibly nothing (``a/#`` matches ``a``).
            return i == last
        if i >= n_topic:
            return False
        if level != SINGLE_LEVEL_WILDCARD and level != t_levels[i]:
            return False
    return n_topic == last + 1


def matches(topic: str, patterns: Iterable[str]) -> bool:
    """Whether ``topic`` matches any of ``patterns``; an invalid pattern matches nothing.

    Never raises for invalid patterns (nor for a topic that is not a string: no match).
    """
    value: object = topic  # typed as str, but callers may pass anything a client sent
    if not isinstance(value, str):
        return False
    for pattern in patterns:
        try:
            validate_pattern(pattern)
        except InvalidTopicError:
            continue
        if topic_matches(value, pattern):
            return True
    return False


class _Node(Generic[T]):
    """A trie node: the wildcard patterns whose levels so far spell the path to this node.

    ``subs`` are the subscribers of the pattern that ends here; ``multi`` those of the pattern
    that continues with ``/#`` here (at the root: the pattern ``#``). Both are ``None`` when
    empty, and are the very set objects `TopicIndex` keeps per pattern.
    """

    __slots__ = ("children", "multi", "single", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.single: _Node[T] | None = None  # the "+" child
        self.subs: set[T] | None = None
        self.multi: set[T] | None = None

    def is_empty(self) -> bool:
        return (
            not self.children and self.single is None and self.subs is None and self.multi is None
        )


class TopicIndex(Generic[T]):
    """Subscriptions of many subscribers, indexed to find who receives a topic quickly.

    Concrete patterns (no wildcard) live in a plain dict only, so a publish on a concrete topic
    costs one lookup for them. Wildcard patterns also live in a trie keyed by level, with a
    separate ``+`` child and a ``#`` subscriber set per node; `match` walks only the branches
    the topic can take. Patterns given to `add` must be valid (see `validate_pattern`).

    Subscribers must be hashable; connections hash by identity. Not thread-safe (it is meant
    for one event loop).
    """

    __slots__ = ("_patterns", "_root", "_wildcards")

    def __init__(self) -> None:
        self._patterns: dict[str, set[T]] = {}  # every pattern -> its (non-empty) subscribers
        self._root: _Node[T] = _Node()
        self._wildcards = 0  # number of wildcard patterns (those held in the trie)

    # -- changes ------------------------------------------------------------------------------

    def add(self, pattern: str, subscriber: T) -> bool:
        """Subscribe ``subscriber`` to ``pattern``; True if it was not subscribed to it yet."""
        subs = self._patterns.get(pattern)
        if subs is None:
            subs = set()
            if is_pattern(pattern):
                self._insert(pattern, subs)  # may raise for a malformed pattern: nothing changed
                self._wildcards += 1
            self._patterns[pattern] = subs
        elif subscriber in subs:
            return False
        subs.add(subscriber)
        return True

    def remove(self, pattern: str, subscriber: T) -> bool:
        """Unsubscribe ``subscriber`` from ``pattern``; True if it was subscribed to it."""
        subs = self._patterns.get(pattern)
        if subs is None or subscriber not in subs:
            return False
        subs.discard(subscriber)
        if not subs:
            del self._patterns[pattern]
            if is_pattern(pattern):
                self._detach(pattern)
                self._wildcards -= 1
        return True

    def remove_all(self, subscriber: T, patterns: Iterable[str]) -> None:
        """Unsubscribe ``subscriber`` from each of ``patterns`` (those it does not hold are skipped)."""
        for pattern in patterns:
            self.remove(pattern, subscriber)

    def clear(self) -> None:
        """Remove every subscription."""
        self._patterns.clear()
        self._root = _Node()
        self._wildcards = 0

    # -- queries ------------------------------------------------------------------------------

    def match(self, topic: str) -> set[T]:
        """Every subscriber with at least one pattern matching ``topic``, each once.

        The result is a new set the caller may keep or change.
        """
        exact = self._patterns.get(topic)
        result: set[T] = set(exact) if exact is not None else set()
        if not self._wildcards:
            return result
        levels = topic.split(SEPARATOR)
        n_levels = len(levels)
        node = self._root
        depth = 0
        # Branches still to walk: the literal child when a "+" child is followed first.
        pending: list[tuple[_Node[T], int]] = []
        child: _Node[T] | None
        while True:
            if node.multi is not None:
                result |= node.multi
            if depth == n_levels:
                if node.subs is not None:
                    result |= node.subs
                child = None
            else:
                child = node.children.get(levels[depth]) if node.children else None
                single = node.single
                depth += 1
                if single is not None:
                    if child is not None:
                        pending.append((child, depth))
                    child = single
            if child is not None:
                node = child
            elif pending:
                node, depth = pending.pop()
            else:
                return result

    def subscribers(self, pattern: str) -> frozenset[T]:
        """The subscribers of exactly ``pattern`` (compared as a string, not matched)."""
        subs = self._patterns.get(pattern)
        return frozenset(subs) if subs is not None else frozenset()

    def has_pattern(self, pattern: str) -> bool:
        """Whether any subscriber holds exactly ``pattern``."""
        return pattern in self._patterns

    def patterns(self) -> list[str]:
        """The distinct patterns held."""
        return list(self._patterns)

    def __len__(self) -> int:
        """The number of distinct patterns held."""
        return len(self._patterns)

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._patterns

    def __repr__(self) -> str:
        return f"<TopicIndex patterns={len(self._patterns)} wildcard={self._wildcards}>"

    def node_count(self) -> int:
        """The number of trie nodes, root included: 1 for an empty index (for leak tests).

        Concrete patterns take no trie node. Walks the whole trie: not for hot paths.
        """
        count = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
            if node.single is not None:
                stack.append(node.single)
        return count

    # -- trie ---------------------------------------------------------------------------------

    @staticmethod
    def _split(pattern: str) -> tuple[list[str], bool]:
        """The levels leading to ``pattern``'s node, and whether it ends with ``#``."""
        levels = pattern.split(SEPARATOR)
        multi = levels[-1] == MULTI_LEVEL_WILDCARD
        if multi:
            levels.pop()
        if MULTI_LEVEL_WILDCARD in levels:
            raise InvalidTopicError("'#' must be the last level")
        return levels, multi

    def _insert(self, pattern: str, subs: set[T]) -> None:
        levels, multi = self._split(pattern)
        node = self._root
        for level in levels:
            if level == SINGLE_LEVEL_WILDCARD:
                nxt = node.single
                if nxt is None:
                    nxt = node.single = _Node()
            else:
                nxt = node.children.get(level)
                if nxt is None:
                    nxt = node.children[level] = _Node()
            node = nxt
        if multi:
            node.multi = subs
        else:
            node.subs = subs

    def _detach(self, pattern: str) -> None:
        """Drop ``pattern``'s subscriber set from the trie and prune the nodes left empty."""
        levels, multi = self._split(pattern)
        node = self._root
        path: list[tuple[_Node[T], str]] = []  # (parent, level) for each node below the root
        for level in levels:
            nxt = node.single if level == SINGLE_LEVEL_WILDCARD else node.children.get(level)
            if nxt is None:  # pragma: no cover - the trie mirrors self._patterns
                return
            path.append((node, level))
            node = nxt
        if multi:
            node.multi = None
        else:
            node.subs = None
        while path and node.is_empty():
            parent, level = path.pop()
            if level == SINGLE_LEVEL_WILDCARD:
                parent.single = None
            else:
                del parent.children[level]
            node = parent
