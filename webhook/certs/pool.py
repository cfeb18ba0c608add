"""A bounded pool of pre-generated private keys, refilled by a background thread.

FSM generates an RSA-2048 key inside every admission call (OSM measured ~99 % of webhook time
there). Here the admission path only pops a ready key; generation happens ahead of need. An ECDSA
P-256 key costs ~15 µs, RSA-2048 ~60 ms (cryptography releases the GIL while generating, so the
refill thread does not stall the event loop).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TypedDict

from webhook.certs.errors import CertError
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey, generate_key, parse_key_type

__all__ = ["KeyPool", "PoolStats"]

log = logging.getLogger(__name__)


class PoolStats(TypedDict):
    key_type: str
    size: int
    available: int
    taken: int
    generated: int
    pool_misses: int
    refill_keys_per_second: float


class KeyPool:
    """`take()` returns a ready key; it generates in the caller's thread only when the pool is empty."""

    def __init__(self, size: int = 64, key_type: KeyType | str = DEFAULT_KEY_TYPE) -> None:
        if not isinstance(size, int) or size < 1 or size > 100_000:
            raise CertError(f"key_pool_size: must be an integer 1..100000, got {size!r}")
        self.size = size
        self.key_type: KeyType = parse_key_type(key_type, field="key_pool_key_type")
        self._keys: collections.deque[PrivateKey] = collections.deque()
        self._cond = threading.Condition()
        self._stopped = True
        self._thread: threading.Thread | None = None
        self._taken = 0
        self._generated = 0
        self._misses = 0
        self._gen_seconds = 0.0

    def start(self) -> KeyPool:
        """Start the refill thread (idempotent). Returns self for chaining."""
        with self._cond:
            if self._thread is not None:
                return self
            self._stopped = False
            self._thread = threading.Thread(target=self._refill, name="key-pool", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def take(self) -> PrivateKey:
        """A fresh, never-before-returned key. O(1) unless the pool ran dry."""
        with self._cond:
            self._taken += 1
            if self._keys:
                key = self._keys.popleft()
                self._cond.notify()
                return key
            self._misses += 1
            self._cond.notify()
        log.debug("key pool empty: generating a %s key in the caller's thread", self.key_type)
        return self._generate()

    def wait_full(self, timeout: float = 30.0) -> bool:
        """Block until the pool is full (start-up readiness, tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._keys) < self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def stats(self) -> PoolStats:
        with self._cond:
            rate = self._generated / self._gen_seconds if self._gen_seconds > 0 else 0.0
            return PoolStats(
                key_type=self.key_type,
                size=self.size,
                available=len(self._keys),
                taken=self._taken,
                generated=self._generated,
                pool_misses=self._misses,
                refill_keys_per_second=round(rate, 1),
            )

    @property
    def pool_misses(self) -> int:
        return self._misses

    def _generate(self) -> PrivateKey:
        t0 = time.perf_counter()
        key = generate_key(self.key_type)
        with self._cond:
            self._generated += 1
            self._gen_seconds += time.perf_counter() - t0
        return key

    def _refill(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and len(self._keys) >= self.size:
                    self._cond.wait()
                if self._stopped:
                    return
            key = self._generate()  # outside the lock: take() never waits for a generation
            with self._cond:
                self._keys.append(key)
                self._cond.notify_all()

    def __enter__(self) -> KeyPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
