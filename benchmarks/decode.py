"""Decode: one page of raw bytes to records, against the other ways of decoding it.

Contenders, all from the same bytes to a list of records:

- dfs-async: `dfs_async._protocol.parse_reply`, the function the client runs on every reply
  (status checks, JSON, strictly typed attrs records built by cattrs-generated structure
  functions, datetimes aware in UTC).
- msgspec Structs with the same fields and the same output types: the practical limit of
  typed decoding in Python. msgspec reads only RFC 3339 datetimes, so the API's
  ``YYYY-MM-DD HH:MM:SS +00:00`` goes through a ``dec_hook`` that builds the same aware UTC
  datetimes (a `datetime` subclass, which msgspec requires of a hook's result).
- The official ``dataforseo-client``'s pydantic v2 models, the way that client decodes a reply
  (``json.loads`` then ``from_dict``); they leave datetimes as strings, so they do less work.
- ``orjson.loads`` to dicts: untyped, unchecked, the floor of any decoding.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import aiohttp
import msgspec
import orjson
from dataforseo_client.models.backlinks_errors_response_info import BacklinksErrorsResponseInfo
from dataforseo_client.models.backlinks_id_list_response_info import (
    BacklinksIdListResponseInfo,
)

from dfs_async import TaskError, TaskId
from dfs_async._convert import format_datetime
from dfs_async._protocol import parse_reply
from dfs_async.testing import Emulator

from ._common import LOGIN, PASSWORD, Row, best_of, metadata_window

_UTC = timezone.utc
_PAGE = 1000


# -- msgspec: the same fields, the same output types ---------------------------------------------


class _WireDatetime(datetime):
    """The API's datetime, decoded by `_dec_hook` to an aware UTC datetime (of this subclass)."""


def _wire_datetime(text: str) -> _WireDatetime:
    # The same forms, the same fast path and the same result as dfs_async's parse_datetime.
    if text[19:] == " +00:00":
        text = text[:19] + "+00:00"
    elif len(text) == 19:
        text += "+00:00"
    elif len(text) == 26 and text[19] == " ":
        text = text[:19] + text[20:]
    parsed = _WireDatetime.fromisoformat(text)
    if parsed.tzinfo is _UTC:
        return parsed
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


def _dec_hook(type_: type[Any], value: Any) -> Any:
    if type_ is _WireDatetime and isinstance(value, str):
        try:
            return _wire_datetime(value)
        except ValueError as exc:
            raise msgspec.ValidationError(str(exc)) from None
    raise NotImplementedError(f"no decoder for {type_!r}")


class MsgTaskId(msgspec.Struct, frozen=True):
    id: str
    url: str
    datetime_posted: _WireDatetime
    datetime_done: _WireDatetime | None
    status: str
    cost: float
    metadata: dict[str, Any] | None = None


class MsgTaskError(msgspec.Struct, frozen=True):
    id: str
    datetime: _WireDatetime
    function: str
    error_code: int
    error_message: str
    http_url: str
    http_method: str
    http_code: int
    http_time: float
    http_response: str


class _IdListTask(msgspec.Struct):
    status_code: int
    result: list[MsgTaskId | None] | None = None


class _IdListEnvelope(msgspec.Struct):
    status_code: int
    tasks: list[_IdListTask] | None = None


class _ErrorsTask(msgspec.Struct):
    status_code: int
    result: list[MsgTaskError | None] | None = None


class _ErrorsEnvelope(msgspec.Struct):
    status_code: int
    tasks: list[_ErrorsTask] | None = None


_ID_LIST_DECODER = msgspec.json.Decoder(_IdListEnvelope, dec_hook=_dec_hook)
_ERRORS_DECODER = msgspec.json.Decoder(_ErrorsEnvelope, dec_hook=_dec_hook)


def _msgspec_records(envelope: _IdListEnvelope | _ErrorsEnvelope) -> list[Any]:
    # The same checks the client makes before it looks at the records.
    if envelope.status_code != 20000 or not envelope.tasks:
        raise ValueError("not an Ok envelope")
    task = envelope.tasks[0]
    if task.status_code != 20000:
        raise ValueError("not an Ok task")
    return [record for record in task.result or () if record is not None]


def msgspec_id_list(body: bytes) -> list[MsgTaskId]:
    return _msgspec_records(_ID_LIST_DECODER.decode(body))


def msgspec_errors(body: bytes) -> list[MsgTaskError]:
    return _msgspec_records(_ERRORS_DECODER.decode(body))


# -- the other contenders ------------------------------------------------------------------------


def ours_id_list(body: bytes) -> list[TaskId]:
    reply = parse_reply(
        endpoint="/v3/backlinks/id_list",
        http_status=200,
        headers={},
        body=body,
        record_type=TaskId,
    )
    return reply.records


def ours_errors(body: bytes) -> list[TaskError]:
    reply = parse_reply(
        endpoint="/v3/backlinks/errors",
        http_status=200,
        headers={},
        body=body,
        record_type=TaskError,
    )
    return reply.records


def _official(model: Any, body: bytes) -> list[Any]:
    # ApiClient.response_deserialize: decode the text, json.loads, then Model.from_dict.
    response = model.from_json(body.decode("utf-8"))
    if response.status_code != 20000 or not response.tasks:
        raise ValueError("not an Ok envelope")
    task = response.tasks[0]
    if task.status_code != 20000:
        raise ValueError("not an Ok task")
    return [record for record in task.result or () if record is not None]


def official_id_list(body: bytes) -> list[Any]:
    return _official(BacklinksIdListResponseInfo, body)


def official_errors(body: bytes) -> list[Any]:
    return _official(BacklinksErrorsResponseInfo, body)


def plain_orjson(body: bytes) -> list[Any]:
    document = orjson.loads(body)
    result: list[Any] = document["tasks"][0]["result"]
    return result


# -- the pages -----------------------------------------------------------------------------------


async def _fetch_pages() -> tuple[bytes, bytes]:
    """A 1000-record id_list page with metadata and a 1000-record errors page, as served."""
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    start, end = metadata_window()
    id_list_task = {
        "datetime_from": format_datetime(start),
        "datetime_to": format_datetime(end),
        "include_metadata": True,
        "limit": _PAGE,
    }
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=20_000, n_errors=1500, rate_limit=None) as emu,
        aiohttp.ClientSession() as session,
    ):
        bodies = []
        for path, task in (
            ("/v3/backlinks/id_list", id_list_task),
            ("/v3/backlinks/errors", {"limit": _PAGE}),
        ):
            async with session.post(emu.url + path, data=json.dumps([task]), headers=headers) as r:
                bodies.append(await r.read())
    return bodies[0], bodies[1]


def _check_same_output(ours_records: list[Any], msgspec_records: list[Any]) -> None:
    """The msgspec contender must give what dfs-async gives, field by field, type by type."""
    assert len(ours_records) == len(msgspec_records) == _PAGE
    for mine, theirs in zip(ours_records, msgspec_records, strict=True):
        for field in msgspec.structs.fields(theirs):
            a, b = getattr(mine, field.name), getattr(theirs, field.name)
            assert a == b, (field.name, a, b)
            assert isinstance(b, type(a)), (field.name, type(a), type(b))
            if isinstance(a, datetime):
                assert a.tzinfo is b.tzinfo is _UTC


Decoder = Callable[[bytes], list[Any]]


def _compare(label: str, body: bytes, contenders: dict[str, Decoder], rounds: int) -> list[Row]:
    _check_same_output(contenders["dfs-async"](body), contenders["msgspec"](body))
    for decoder in contenders.values():
        assert len(decoder(body)) == _PAGE
    best = best_of(rounds, {name: functools.partial(d, body) for name, d in contenders.items()})
    rate = {name: _PAGE / seconds for name, seconds in best.items()}
    mine = best["dfs-async"]
    details = {
        "page_bytes": len(body),
        "records": _PAGE,
        "seconds_per_page": best,
        "records_per_second": rate,
        "rounds": rounds,
    }
    rows = []
    for baseline, target, limit in (
        # 3x: the records are attrs classes built by their own __init__ (cattrs-generated code
        # calls it), about half of the time per record; msgspec builds its Structs in C.
        ("msgspec", "<= 3.00 (within 3x of msgspec)", 3.0),
        ("official", "<= 0.50 (2x ahead of official)", 0.5),
        ("orjson", "info (untyped floor)", None),
    ):
        ratio = mine / best[baseline]
        rows.append(
            Row(
                name=f"decode.{label}.vs_{baseline}",
                measured=rate["dfs-async"],
                baseline=rate[baseline],
                unit="rec/s",
                baseline_label=baseline,
                ratio=ratio,
                target=target,
                passed=None if limit is None else ratio <= limit,
                note=f"{_PAGE} records, {len(body) // 1024} KB",
                details=details,
            )
        )
    return rows


def run(smoke: bool) -> list[Row]:
    id_list_body, errors_body = asyncio.run(_fetch_pages())
    rounds = 5 if smoke else 100
    id_list: dict[str, Decoder] = {
        "dfs-async": ours_id_list,
        "msgspec": msgspec_id_list,
        "official": official_id_list,
        "orjson": plain_orjson,
    }
    errors: dict[str, Decoder] = {
        "dfs-async": ours_errors,
        "msgspec": msgspec_errors,
        "official": official_errors,
        "orjson": plain_orjson,
    }
    return [
        *_compare("id_list", id_list_body, id_list, rounds),
        *_compare("errors", errors_body, errors, rounds),
    ]
