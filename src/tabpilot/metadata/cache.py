"""`VersionedCache`: records read from a metadata store, kept while the store is unchanged.

A hot path (a prediction) reads the same small record on every request. The store's
`data_version()` is a number that changes with every commit by any connection of any process
(SQLite: `PRAGMA data_version`, a few microseconds), so a record may be reused for exactly as
long as that number has not moved since it was read: a deleted model, a revoked or replaced
deploy key or any other change takes effect on the next request, whichever process made it.

Why it is exact: the version is read *before* the record. A commit that lands between the two
reads may be in the record or not, but it changes the version either way, so the entry is
stale on its next use and read again. A store that cannot tell (`data_version()` is None, as
with PostgreSQL) is read every time.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from tabpilot.metadata.base import MetadataStore

T = TypeVar("T")

DEFAULT_ENTRIES = 256
"""Records kept per store; the least recently used goes first."""


class VersionedCache(Generic[T]):
    """A bounded, thread-safe LRU of values read from `store`, each valid for one data version.

    Only found values are kept (`load` returning None is not), so unknown keys sent by a
    client cannot push out the entries of real ones.
    """

    def __init__(self, store: MetadataStore, max_entries: int = DEFAULT_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        # Weak: the cache is kept per store (`cache_for`) and must not keep its store alive.
        self._store = weakref.ref(store)
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, tuple[int, T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0  # for tests and diagnostics
        self.misses = 0

    def get(self, key: Hashable, load: Callable[[], T | None]) -> T | None:
        """The value of `key`: the kept one if the store has not changed since it was read,
        else `load()` (kept when it is not None)."""
        store = self._store()
        version = store.data_version() if store is not None else None
        if version is None:
            return load()
        with self._lock:
            entry = self._items.get(key)
            if entry is not None and entry[0] == version:
                self._items.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        value = load()  # after the version read: a commit in between makes this entry stale
        with self._lock:
            if value is None:
                self._items.pop(key, None)
                return None
            self._items[key] = (version, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_caches: weakref.WeakKeyDictionary[MetadataStore, dict[str, VersionedCache]] = (  # type: ignore[type-arg]
    weakref.WeakKeyDictionary()
)
_caches_lock = threading.Lock()


def cache_for(store: MetadataStore, name: str) -> VersionedCache:  # type: ignore[type-arg]
    """The cache called `name` of `store` (one per store and name, made on first use)."""
    with _caches_lock:
        per_store = _caches.setdefault(store, {})
        cache = per_store.get(name)
        if cache is None:
            cache = per_store[name] = VersionedCache(store)
        return cache
