"""Run pyHanko's coroutines from this library's synchronous API.

``asyncio.run`` refuses to start inside a thread whose event loop is already running (an async web
framework, a notebook, a test using an event loop). In that case the coroutine runs to completion on
a fresh loop in a worker thread instead, and the caller's thread waits for it: the library's calls
stay synchronous and safe wherever they are made from.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (or raise its exception)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the common case
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="signing-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
