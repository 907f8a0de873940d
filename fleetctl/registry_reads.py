"""Reads of the registry that only operators make: many serials at once (``BatchGetItem``), lists through
the sharded indexes, parallel scans of the whole table, and the index-key backfill built on such a scan.

The functions never make these reads, so they stay out of the functions' code (:mod:`hook` holds what is
deployed); they build on the same items and expressions (:mod:`hook.registry_items`).
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count, islice
from typing import Any, Final, cast

from boto3.dynamodb.conditions import Attr as Attribute
from boto3.dynamodb.conditions import ConditionBase, Key

from hook.claim_breaker import is_device_key
from hook.contract import (
    DEVICE_TYPE_INDEX,
    REGISTRY_PARTITION_KEY,
    STATUS_INDEX,
    Attr,
    DeviceStatus,
    is_certificate_binding_key,
    shard_keys,
)
from hook.registry_items import Item, device_key, expressions, shard_attributes, string_attributes
from hook.registry_transitions import DeviceRecords

BATCH_GET_MAX: Final = 100
"""Keys per ``BatchGetItem``: DynamoDB's maximum (API reference, BatchGetItem)."""
BATCH_GET_BACKOFF_SECONDS: Final = 0.05
BATCH_GET_BACKOFF_MAX_SECONDS: Final = 5.0

SCAN_SEGMENTS: Final = 8
"""Segments (and threads) of a parallel Scan of the whole registry."""

_BULK_STATES: Final = frozenset({DeviceStatus.PREREGISTERED, DeviceStatus.ACTIVE})
"""The states most of a fleet is in. A list of one type in one of these reads that type's items (the type
index, the state as a filter) rather than every device in the state; in the rare states it is the other way
round."""

_SCAN_DONE: Final = object()
"""What a parallel scan's segment reader puts on the queue when its segment is read."""


@dataclass(frozen=True)
class BackfillReport:
    """What :meth:`RegistryReads.backfill_shards` did."""

    scanned: int
    """Device items read."""
    updated: int
    """Items given the index keys of their status and type (missing or stale before)."""
    skipped: int
    """Items a transition changed between the read and the write: that transition wrote its own keys."""


class RegistryReads(DeviceRecords):
    """The functions' records (:class:`~hook.registry_transitions.DeviceRecords`) and the reads only
    operators make."""

    def get_many(self, serial_numbers: Iterable[str], *, attributes: Collection[str] = ()) -> Iterator[Item]:
        """The registry items of ``serial_numbers`` that exist, read consistently with ``BatchGetItem``,
        :data:`BATCH_GET_MAX` keys a request; only ``attributes`` (and the serial) of each when given. A key
        repeated within a request is asked once (DynamoDB refuses a request naming a key twice), and keys a
        request left unprocessed are asked again after an exponential back-off (API reference,
        BatchGetItem). Items come in no particular order."""
        serials = iter(serial_numbers)
        shown = list(dict.fromkeys([REGISTRY_PARTITION_KEY, *attributes])) if attributes else []
        while batch := list(dict.fromkeys(islice(serials, BATCH_GET_MAX))):
            keys = {"Keys": [device_key(serial) for serial in batch], "ConsistentRead": True}
            request: dict[str, Any] = {self._table_name: keys | expressions(projection=shown)}
            for attempt in count():
                response = self._client.batch_get_item(RequestItems=request)
                yield from map(string_attributes, response.get("Responses", {}).get(self._table_name, []))
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(min(BATCH_GET_BACKOFF_SECONDS * 2**attempt, BATCH_GET_BACKOFF_MAX_SECONDS))

    def devices(
        self,
        status: DeviceStatus | None = None,
        device_type: str | None = None,
        *,
        attributes: Collection[Attr] = (),
        filter_by: ConditionBase | None = None,
        limit: int | None = None,
    ) -> Iterator[Item]:
        """Devices in ``status`` and/or of ``device_type`` that ``filter_by`` (a filter: the items are read
        anyway) admits, page by page, at most ``limit``; only ``attributes`` of each when given (with the
        serial and the attribute they are ordered by).

        - a status alone, or a rare status (``PENDING``, ``REVOKED``, ``DECOMMISSIONED``) with a type: the
          status index, ordered by ``updatedAt`` (the type a filter);
        - a type alone, or a type with ``PREREGISTERED`` or ``ACTIVE``: the type index, ordered by serial
          (the status a filter), so a bulk selection reads that type's items rather than the whole state;
        - neither: :meth:`scan_devices` (a parallel Scan), in no particular order.

        An index is read shard by shard (:data:`~hook.contract.REGISTRY_SHARDS` queries) and the shards are
        merged in order; with ``limit`` no shard is read further than ``limit`` items."""
        if status is None and device_type is None:
            yield from self.scan_devices(attributes=attributes, filter_by=filter_by, limit=limit)
            return
        if status is None or (device_type is not None and status in _BULK_STATES):
            index, by, value, order_by = DEVICE_TYPE_INDEX, Attr.TYPE_SHARD, device_type, Attr.SERIAL_NUMBER
            other = None if status is None else Attribute(Attr.STATUS).eq(status)
        else:
            index, by, value, order_by = STATUS_INDEX, Attr.STATUS_SHARD, status, Attr.UPDATED_AT
            other = None if device_type is None else Attribute(Attr.DEVICE_TYPE).eq(device_type)
        if other is not None:
            filter_by = other if filter_by is None else other & filter_by
        found = self._merged(
            index,
            by,
            cast(str, value),  # not None: a status or a type was given
            order_by=order_by,
            filter_by=filter_by,
            attributes=attributes,
            page_size=limit,
        )
        yield from islice(found, limit)

    def scan_devices(
        self,
        *,
        attributes: Collection[str] = (),
        having: Collection[str] = (),
        filter_by: ConditionBase | None = None,
        segments: int = SCAN_SEGMENTS,
        limit: int | None = None,
    ) -> Generator[Item, None, None]:
        """Every device item, for reports that read the whole registry anyway: a parallel Scan of
        ``segments`` segments, one thread each, pages handed over as they arrive (so memory stays at a few
        pages however large the table). Certificate bindings are left out (they have no ``status``), and so
        are items without every attribute in ``having`` and items ``filter_by`` refuses (a filter: DynamoDB
        still reads every item); only ``attributes`` (and the serial) of each when given. In no particular
        order; at most ``limit`` items, and with ``limit`` no segment reads pages of more than ``limit``
        items. Closing the iterator early stops the readers."""
        present: ConditionBase = Attribute(Attr.STATUS).exists()
        for name in having:
            present = present & Attribute(name).exists()
        if filter_by is not None:
            present = present & filter_by
        shown = list(dict.fromkeys([REGISTRY_PARTITION_KEY, *attributes])) if attributes else []
        arguments: dict[str, Any] = {
            "TableName": self._table_name,
            **expressions(filter_by=present, projection=shown),
        }
        if limit is not None:
            arguments["PaginationConfig"] = {"PageSize": limit}
        pages = self._scanned_pages(arguments, segments)
        items = (string_attributes(raw) for page in pages for raw in page)
        yield from islice((item for item in items if is_device_key(item[REGISTRY_PARTITION_KEY])), limit)

    def backfill_shards(
        self,
        *,
        segments: int = SCAN_SEGMENTS,
        concurrency: int = SCAN_SEGMENTS,
        on_item: Callable[[], None] | None = None,
    ) -> BackfillReport:
        """Give every device item the index keys of its status and type (:func:`shard_attributes`) where
        they are missing or stale: items written before the indexes were sharded, or moved by a version
        that did not write the keys. Reads the registry with :meth:`scan_devices`; writes only the items
        that need it, one conditional ``UpdateItem`` each (``concurrency`` at a time), conditional on the
        status and type being the ones read: an item a transition changed meanwhile is skipped, that
        transition wrote its own keys. ``updatedAt`` is left alone (this is not a transition). Safe to
        interrupt and re-run; a second run writes nothing. ``on_item`` is called per item read."""
        read = [Attr.STATUS, Attr.DEVICE_TYPE, Attr.STATUS_SHARD, Attr.TYPE_SHARD]
        scanned = updated = skipped = 0

        def tally(written: Future[bool]) -> None:
            nonlocal updated, skipped
            if written.result():
                updated += 1
            else:
                skipped += 1

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            in_flight: deque[Future[bool]] = deque()
            for item in self.scan_devices(attributes=read, segments=segments):
                scanned += 1
                if on_item is not None:
                    on_item()
                keys = stale_shard_attributes(item)
                if keys:
                    in_flight.append(pool.submit(self._write_shard_attributes, item, keys))
                while len(in_flight) > 4 * concurrency or (in_flight and in_flight[0].done()):
                    tally(in_flight.popleft())
            while in_flight:
                tally(in_flight.popleft())
        return BackfillReport(scanned=scanned, updated=updated, skipped=skipped)

    def _write_shard_attributes(self, item: Item, keys: Item) -> bool:
        """Set ``keys`` on the serial of ``item`` if its status and type are still the ones read."""
        device_type = item.get(Attr.DEVICE_TYPE)
        unchanged = Attribute(Attr.STATUS).eq(item[Attr.STATUS]) & (
            Attribute(Attr.DEVICE_TYPE).not_exists()
            if device_type is None
            else Attribute(Attr.DEVICE_TYPE).eq(device_type)
        )
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=device_key(item[Attr.SERIAL_NUMBER]),
                **expressions(unchanged, assign=keys),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _merged(
        self,
        index: str,
        hash_key: Attr,
        value: str,
        *,
        order_by: Attr,
        filter_by: ConditionBase | None,
        attributes: Collection[Attr],
        page_size: int | None,
    ) -> Iterator[Item]:
        """The items of every shard of ``value`` in ``index``, merged in ``order_by`` order, then by serial
        (each shard's query returns its items in that order: ``order_by`` is the index's sort key)."""
        shown = list(dict.fromkeys([*attributes, order_by, REGISTRY_PARTITION_KEY])) if attributes else []
        paging = {} if page_size is None else {"PaginationConfig": {"PageSize": page_size}}
        shards = [
            (
                string_attributes(raw)
                for page in self._pages(index, Key(hash_key).eq(key), filter_by, attributes=shown, **paging)
                for raw in page.get("Items", [])
            )
            for key in shard_keys(value)
        ]
        return heapq.merge(*shards, key=lambda item: (item[order_by], item[REGISTRY_PARTITION_KEY]))

    def _scanned_pages(self, arguments: Mapping[str, Any], segments: int) -> Iterator[list[dict[str, Any]]]:
        """The pages of a Scan in ``segments`` parallel segments, each read by its own thread and handed over
        through a queue of a few pages; closing the iterator (or an error in a segment) stops them all."""
        handed: queue.Queue[object] = queue.Queue(maxsize=2 * segments)
        stop = threading.Event()

        def hand_over(what: object) -> bool:
            while not stop.is_set():
                try:
                    handed.put(what, timeout=0.1)
                except queue.Full:
                    continue
                return True
            return False

        def read(segment: int) -> None:
            try:
                paginator = self._client.get_paginator("scan")
                for page in paginator.paginate(**arguments, Segment=segment, TotalSegments=segments):
                    if not hand_over(page.get("Items", [])):
                        return
            except Exception as error:  # handed to the reader, which raises it
                hand_over(error)
            hand_over(_SCAN_DONE)

        readers = [threading.Thread(target=read, args=(segment,), daemon=True) for segment in range(segments)]
        for reader in readers:
            reader.start()
        try:
            done = 0
            while done < segments:
                got = handed.get()
                if got is _SCAN_DONE:
                    done += 1
                elif isinstance(got, Exception):
                    raise got
                else:
                    yield cast("list[dict[str, Any]]", got)
        finally:
            stop.set()
            for reader in readers:
                reader.join()


def stale_shard_attributes(item: Item) -> Item:
    """The index keys ``item`` lacks or has wrong for its status and type (empty when it is right)."""
    expected = shard_attributes(
        item[Attr.SERIAL_NUMBER], status=item.get(Attr.STATUS), device_type=item.get(Attr.DEVICE_TYPE)
    )
    return {name: value for name, value in expected.items() if item.get(name) != value}


def devices_and_bindings(
    items: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Item], dict[str, str]]:
    """Raw registry items (a scan's) split into the devices' items by serial number and the certificate
    bindings as certificate id -> serial number; key bindings are neither."""
    devices: dict[str, Item] = {}
    bindings: dict[str, str] = {}
    for raw in items:
        item = string_attributes(raw)
        key = item[REGISTRY_PARTITION_KEY]
        if is_certificate_binding_key(key):
            bindings[item[Attr.CERTIFICATE_ID]] = item[Attr.DEVICE_SERIAL_NUMBER]
        elif is_device_key(key):
            devices[key] = item
    return devices, bindings
