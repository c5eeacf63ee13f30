"""The public error classes: where each sits in the hierarchy and whether the client retries it."""

from __future__ import annotations

import copy
import pickle

import pytest

import dfs_async
from dfs_async import _errors

#: Every public error class with its public ancestors (itself excluded), and whether the client
#: tries a call again after it.
HIERARCHY: dict[type[Exception], tuple[set[type[BaseException]], bool]] = {
    dfs_async.DataForSEOError: (set(), False),
    dfs_async.InvalidArgumentError: ({dfs_async.DataForSEOError, ValueError}, False),
    dfs_async.ClientClosedError: ({dfs_async.DataForSEOError, RuntimeError}, False),
    dfs_async.TransportError: ({dfs_async.DataForSEOError}, True),
    dfs_async.RequestTimeoutError: ({dfs_async.DataForSEOError, dfs_async.TransportError}, True),
    dfs_async.MalformedResponseError: (
        {dfs_async.DataForSEOError, dfs_async.TransportError},
        True,
    ),
    dfs_async.DecodeError: ({dfs_async.DataForSEOError}, False),
    dfs_async.ReplyTooLargeError: ({dfs_async.DataForSEOError, dfs_async.DecodeError}, False),
    dfs_async.APIError: ({dfs_async.DataForSEOError}, False),
    dfs_async.AuthenticationError: ({dfs_async.DataForSEOError, dfs_async.APIError}, False),
    dfs_async.InvalidRequestError: ({dfs_async.DataForSEOError, dfs_async.APIError}, False),
    dfs_async.RateLimitedError: ({dfs_async.DataForSEOError, dfs_async.APIError}, True),
    dfs_async.ServerError: ({dfs_async.DataForSEOError, dfs_async.APIError}, True),
    dfs_async.RedisBackendError: ({dfs_async.DataForSEOError}, False),
    dfs_async.RedisUnavailableError: (
        {dfs_async.DataForSEOError, dfs_async.RedisBackendError},
        False,
    ),
    dfs_async.StoreError: ({dfs_async.DataForSEOError}, False),
    dfs_async.StoreLockedError: ({dfs_async.DataForSEOError, dfs_async.StoreError}, False),
}

#: The classes outside the package that an error class may also derive from, on purpose.
BUILTIN_BASES = {ValueError, RuntimeError}


def test_the_table_names_every_public_error_class() -> None:
    """Every exception class the package exports is in the table above, and nothing else."""
    exported = {
        value
        for name in dfs_async.__all__
        if isinstance(value := getattr(dfs_async, name), type) and issubclass(value, Exception)
    }
    assert exported == set(HIERARCHY)
    assert set(_errors.__all__) == {cls.__name__ for cls in HIERARCHY}


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda cls: cls.__name__)
def test_each_class_sits_exactly_where_the_hierarchy_says(cls: type[Exception]) -> None:
    """A class derives from its listed ancestors and from no other public error class."""
    ancestors, _ = HIERARCHY[cls]
    public = set(HIERARCHY) | BUILTIN_BASES
    assert {base for base in cls.__mro__[1:] if base in public} == ancestors


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda cls: cls.__name__)
def test_retryable_says_whether_the_client_retries(cls: type[Exception]) -> None:
    """`retryable` is a bool on the class, the client's retry decision for that class."""
    _, retryable = HIERARCHY[cls]
    assert cls.retryable is retryable  # type: ignore[attr-defined]


def test_a_malformed_reply_is_not_a_decode_error() -> None:
    """A body that is not JSON is retried, so `except DecodeError` (not retried) misses it."""
    error = dfs_async.MalformedResponseError(
        "expected a JSON envelope", endpoint="/v3/backlinks/id_list", http_status=200, raw="<html>"
    )
    assert not isinstance(error, dfs_async.DecodeError)
    assert isinstance(error, dfs_async.TransportError)
    assert error.retryable is True
    assert (error.endpoint, error.path, error.http_status, error.raw) == (
        "/v3/backlinks/id_list",
        "$",
        200,
        "<html>",
    )
    assert str(error) == "expected a JSON envelope (HTTP 200): '<html>' (/v3/backlinks/id_list)"


def test_the_errors_module_imports_only_the_standard_library() -> None:
    """`_errors.py` imports nothing (the command line loads it without aiohttp or attrs)."""
    import ast
    import pathlib
    import sys

    tree = ast.parse(pathlib.Path(_errors.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported <= set(sys.stdlib_module_names)
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


def test_the_command_line_still_calls_a_malformed_reply_unreadable() -> None:
    """Now a TransportError, a body that is not JSON is still worded as a reply, exit 4."""
    from dfs_async.cli.exits import classify

    error = dfs_async.MalformedResponseError(
        "expected a JSON envelope", endpoint="/v3/backlinks/id_list", http_status=200, raw="<html>"
    )
    assert classify(error) == (
        4,
        "the API sent a reply that cannot be read: expected a JSON envelope (HTTP 200): "
        "'<html>' (/v3/backlinks/id_list)",
    )


#: One instance of each class, as the client raises them.
INSTANCES: list[Exception] = [
    dfs_async.DataForSEOError("base"),
    dfs_async.InvalidArgumentError("page_size must be 1..1000"),
    dfs_async.ClientClosedError("the client is closed"),
    dfs_async.TransportError("connection reset", endpoint="/v3/backlinks/id_list"),
    dfs_async.RequestTimeoutError("no reply in 30 s", endpoint="/v3/backlinks/id_list"),
    dfs_async.MalformedResponseError(
        "not JSON", endpoint="/v3/backlinks/id_list", http_status=502, raw="<html>"
    ),
    dfs_async.DecodeError("bad", endpoint="/v3/backlinks/id_list", path="$.tasks", raw="[]"),
    dfs_async.ReplyTooLargeError(
        "too large", endpoint="/v3/backlinks/id_list", http_status=200, limit=10, raw="x" * 11
    ),
    dfs_async.APIError(
        status_code=40501, status_message="Invalid Field", http_status=200, endpoint="/v3/x"
    ),
    dfs_async.AuthenticationError(
        status_code=40100, status_message="Not authorized", http_status=401, endpoint="/v3/x"
    ),
    dfs_async.InvalidRequestError(
        status_code=40503, status_message="POST Data Is Invalid", http_status=200, endpoint="/x"
    ),
    dfs_async.RateLimitedError(
        status_code=40202,
        status_message="Rate limit",
        http_status=429,
        endpoint="/v3/x",
        retry_after=12.5,
    ),
    dfs_async.ServerError(
        status_code=50000, status_message="Internal Error", http_status=500, endpoint="/v3/x"
    ),
    dfs_async.RedisBackendError("NOSCRIPT", url="redis://127.0.0.1:6379/0"),
    dfs_async.RedisUnavailableError("unreachable", url="redis://127.0.0.1:6379/0"),
    dfs_async.StoreError("tasks.sqlite is not a dfs-async store (no meta table)"),
    dfs_async.StoreLockedError("tasks.sqlite is being written by process 4242 on build-1"),
]


def test_the_instances_cover_every_class() -> None:
    """One instance of each public error class, no class left out."""
    assert {type(error) for error in INSTANCES} == set(HIERARCHY)


@pytest.mark.parametrize("error", INSTANCES, ids=lambda error: type(error).__name__)
def test_every_error_pickles_and_copies_whole(error: Exception) -> None:
    """pickle and copy give the same class, message and attributes (a process pool's result)."""
    copies = (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error))  # noqa: S301
    for twin in copies:
        assert type(twin) is type(error)
        assert (str(twin), twin.args, vars(twin)) == (str(error), error.args, vars(error))
