"""Event-name patterns: ``.`` separates segments, ``*`` matches exactly one segment, ``**``
any number of segments (none included); every other segment matches itself.

Event names are ``<topic>.<messageType>``, so ``chat.*`` matches every message type on
``chat``, ``*.presence`` presence on any topic and ``**`` everything. Patterns are kept in a
trie walked once per event name, and the answer is cached per name, so the cost of a
message does not grow with the number of patterns that do not match it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["PatternIndex", "matches", "validate_pattern"]

T = TypeVar("T")

_ONE = "*"
_ANY = "**"
_CACHE_LIMIT = 4096


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a usable pattern, else raise :class:`ValueError`."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty string, not {pattern!r}")
    if "" in pattern.split("."):
        raise ValueError(f"pattern {pattern!r} has an empty segment")
    return pattern


def matches(pattern: str, event: str) -> bool:
    """Whether ``pattern`` matches the event name ``event`` (no index, for one-off checks)."""
    index: PatternIndex[None] = PatternIndex()
    index.add(pattern, None)
    return bool(index.match(event))


class _Node(Generic[T]):
    __slots__ = ("any", "children", "loops", "one", "values")

    def __init__(self, *, loops: bool = False) -> None:
        #: A "**" node: it may swallow further segments and stay where it is.
        self.loops = loops
        self.children: dict[str, _Node[T]] = {}
        self.one: _Node[T] | None = None
        self.any: _Node[T] | None = None
        self.values: list[T] = []


class PatternIndex(Generic[T]):
    """Values registered under patterns, looked up by event name.

    :meth:`match` returns the values whose pattern matches, in registration order, each once.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._order: dict[int, int] = {}
        self._counter = 0
        self._cache: dict[str, list[T]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for segment in validate_pattern(pattern).split("."):
            if segment == _ONE:
                if node.one is None:
                    node.one = _Node()
                node = node.one
            elif segment == _ANY:
                if node.any is None:
                    node.any = _Node(loops=True)
                node = node.any
            else:
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
        node.values.append(value)
        self._order[id(value)] = self._counter
        self._counter += 1
        self._size += 1
        self._cache.clear()

    def remove(self, pattern: str, value: T) -> None:
        """Remove ``value`` from ``pattern``; a value that is not there is ignored."""
        node: _Node[T] | None = self._root
        for segment in pattern.split("."):
            if node is None:
                return
            if segment == _ONE:
                node = node.one
            elif segment == _ANY:
                node = node.any
            else:
                node = node.children.get(segment)
        if node is None:
            return
        for i, existing in enumerate(node.values):
            if existing is value:
                del node.values[i]
                self._order.pop(id(value), None)
                self._size -= 1
                self._cache.clear()
                return

    def match(self, event: str) -> list[T]:
        """The values whose patterns match ``event`` (do not mutate the returned list)."""
        found = self._cache.get(event)
        if found is None:
            found = self._walk(event)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[event] = found
        return found

    def _walk(self, event: str) -> list[T]:
        # A breadth-first walk of the trie: the set of nodes reachable after each segment.
        # A "**" node is entered without consuming anything (see _closure) and consumes
        # any number of segments by staying put.
        active = self._closure([self._root])
        for segment in event.split("."):
            following: list[_Node[T]] = []
            for node in active:
                child = node.children.get(segment)
                if child is not None:
                    following.append(child)
                if node.one is not None:
                    following.append(node.one)
                if node.loops:
                    following.append(node)
            active = self._closure(following)
            if not active:
                return []
        seen: set[int] = set()
        values: list[T] = []
        for node in active:
            for value in node.values:
                if id(value) not in seen:
                    seen.add(id(value))
                    values.append(value)
        values.sort(key=lambda v: self._order.get(id(v), 0))
        return values

    @staticmethod
    def _closure(nodes: list[_Node[T]]) -> list[_Node[T]]:
        """Add the nodes reachable by letting "**" match zero segments; no duplicates."""
        result: list[_Node[T]] = []
        seen: set[int] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            result.append(node)
            if node.any is not None:
                stack.append(node.any)
        return result

    def __iter__(self) -> Iterator[T]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.values
            stack.extend(node.children.values())
            if node.one is not None:
                stack.append(node.one)
            if node.any is not None:
                stack.append(node.any)
