"""Identifiers of a Rerun recording that do not change between builds (for `proving_ground.replay`).

Rerun 0.41 stamps a recording with values drawn at write time, so two builds of the same
episode differ in almost every byte although they hold the same data:

- every chunk id and row id is a TUID (``re_tuid``: nanoseconds of the wall clock and a
  per-thread random counter), drawn when a chunk is made;
- ``rr.log`` adds a ``log_time`` timeline (the wall clock) to temporal rows, which is what the
  blueprint's rows get;
- the blueprint's views and containers are named by ``uuid4`` and its store by a random id
  (``bindings.new_blueprint`` takes none);
- each ``SetStoreInfo`` message carries a fresh TUID as its row id;
- the batcher decides from timers how logged rows are cut into chunks and in which order.

So a build makes its chunks itself (`ChunkSender`: ``Chunk.from_columns``, never the batcher)
and numbers them and their rows from one `TuidCounter`; the blueprint gets ids derived from
the recording id; and once the file is closed `fix_store_identity` rewrites, in place and at
equal length, the values only Rerun's writer draws (the ``SetStoreInfo`` row ids and the
blueprint's store id) and recomputes the footer's checksum. The result is checked by building
twice and comparing bytes, and by ``rerun rrd verify`` (``tests/sdk/test_replay.py``).
The rewrite reads the documented framing of an RRD stream (``re_log_encoding``: a 12-byte
stream header, then messages of a 16-byte header ``kind, len`` and a protobuf payload, the
footer's manifest as the payload of the end message, then a stream footer with its offset,
size and xxHash32 checksum); anything else in the file raises ValueError, never a silent
change.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import rerun as rr
import rerun.blueprint as rrb
import rerun_bindings as bindings
from rerun.chunk import Chunk, RrdReader

ROW_ID_COLUMN = "rerun.controls.RowId"
_CHUNK_ID_KEY = b"rerun:id"

# re_log_encoding::rrd: StreamHeader (fourcc, version, options), MessageHeader (kind, len).
_STREAM_HEADER_BYTES = 12
_MESSAGE_HEADER = struct.Struct("<QQ")
_KIND_END, _KIND_SET_STORE_INFO = 0, 1
# StreamFooter as Rerun 0.41 writes it: manifest offset, size, crc, "RRF2", "FOOT", version.
_STREAM_FOOTER = struct.Struct("<QQI4s4sI")
_FOOTER_CRC_SEED = 7850921  # StreamFooter::CRC_SEED
# SetStoreInfo payload: field 1 (row_id, 18 bytes) = Tuid {fixed64 time_ns; fixed64 inc}.
_STORE_INFO_ROW_ID = b"\x0a\x12\x09"
# A message's store id sits in the protobuf header at its start, before any compressed data.
_STORE_ID_SEARCH_BYTES = 256


class TuidCounter:
    """TUIDs (16 bytes, big-endian nanoseconds then counter) from a fixed time and a counter:
    increasing, as Rerun's own are, and the same on every build."""

    def __init__(self, time_ns: int):
        self.time_ns = max(0, int(time_ns))
        self.count = 0

    def take(self, n: int) -> list[bytes]:
        start = self.count + 1
        self.count += n
        prefix = self.time_ns.to_bytes(8, "big")
        return [prefix + i.to_bytes(8, "big") for i in range(start, start + n)]


def with_counted_ids(chunk: Chunk, counter: TuidCounter) -> Chunk:
    """`chunk` with its chunk id and row ids taken from `counter` (data unchanged)."""
    batch = chunk.to_record_batch()
    chunk_id, *row_ids = counter.take(1 + batch.num_rows)
    index = batch.schema.get_field_index(ROW_ID_COLUMN)
    field = batch.schema.field(index)
    rows = pa.array(row_ids, type=pa.binary(16))
    if field.type != rows.type:
        rows = pa.ExtensionArray.from_storage(field.type, rows)
    batch = batch.set_column(index, field, rows)
    metadata = dict(batch.schema.metadata or {})
    hex_id = chunk_id.hex()
    metadata[_CHUNK_ID_KEY] = f"chunk_{hex_id[:16].upper()}{hex_id[16:]}".encode()
    (rebuilt,) = Chunk.from_record_batch(batch.replace_schema_metadata(metadata))
    return rebuilt


class ChunkSender:
    """The part of `rr.RecordingStream` a build uses, sending ready-made chunks with counted
    ids: `send_columns`, `log` (one row; static, or at the times of `set_time`),
    `send_property`, the recording's name and start time, and `flush`."""

    def __init__(self, stream: rr.RecordingStream, counter: TuidCounter):
        self.stream, self.counter = stream, counter
        self.times: dict[str, int] = {}

    def send(self, chunk: Chunk) -> None:
        rr.send_chunks(with_counted_ids(chunk, self.counter), recording=self.stream)

    def send_columns(self, entity: str, indexes: Iterable[Any], columns: Iterable[Any]) -> None:
        self.send(Chunk.from_columns(entity, indexes, columns))

    def set_time(self, timeline: str, *, sequence: int) -> None:
        self.times[timeline] = int(sequence)

    def log(self, entity: str, entity_like: Any, *extra: Any, static: bool = False) -> None:
        batches = []
        for item in (entity_like, *extra):
            parts = item.as_component_batches() if hasattr(item, "as_component_batches") else item
            batches.extend(parts)
        columns = [b.partition([len(b.as_arrow_array())]) for b in batches]
        indexes = (
            []
            if static
            else [rr.TimeColumn(name, sequence=[value]) for name, value in self.times.items()]
        )
        self.send(
            Chunk.from_columns(entity if entity.startswith("/") else f"/{entity}", indexes, columns)
        )

    def send_property(self, name: str, values: Any) -> None:
        self.send(Chunk.from_property(name, values))

    def send_recording_info(self, *, name: str, start_time_ns: int | None) -> None:
        start = None if start_time_ns is None else np.datetime64(start_time_ns, "ns")
        info = rr.archetypes.RecordingInfo(name=name, start_time=start)
        self.log("/__properties", info, static=True)

    def flush(self) -> None:
        self.stream.flush()


def fixed_ids(blueprint: rrb.Blueprint, namespace: uuid.UUID) -> rrb.Blueprint:
    """Give every view and container of `blueprint` an id derived from `namespace` and its
    place in the tree, instead of rrb's ``uuid4``."""
    position = 0

    def visit(node: Any) -> None:
        nonlocal position
        node.id = uuid.uuid5(namespace, f"blueprint-node-{position}")
        position += 1
        for child in getattr(node, "contents", None) or ():
            if isinstance(child, rrb.View | rrb.Container):
                visit(child)

    if hasattr(blueprint, "root_container"):
        visit(blueprint.root_container)
    return blueprint


def blueprint_storage(
    blueprint: rrb.Blueprint, application_id: str, counter: TuidCounter
) -> bindings.PyMemorySinkStorage:
    """The blueprint as the in-memory stream ``bindings.save(default_blueprint=...)`` takes,
    its rows on the ``blueprint`` timeline at 0 as rrb logs them, without ``log_time``."""
    stream = rr.RecordingStream._from_native(
        bindings.new_blueprint(
            application_id=application_id,
            make_default=False,
            make_thread_default=False,
            default_enabled=True,
        )
    )
    storage = stream.memory_recording()
    sender = ChunkSender(stream, counter)
    sender.set_time("blueprint", sequence=0)
    blueprint._log_to_stream(sender)  # type: ignore[arg-type]  # duck-typed: log, set_time
    stream.flush()
    return storage.storage


def fix_store_identity(path: Path, blueprint_store_id: str) -> None:
    """Rewrite, in place, what Rerun's writer draws at random in a closed ``.rrd``: each
    ``SetStoreInfo`` row id (to zero) and the blueprint's store id (to `blueprint_store_id`,
    of the same length); then recompute the footer checksum. Raises ValueError if the file is
    not framed as expected."""
    blueprints = RrdReader(path).blueprints()
    random_ids = {b.recording_id.encode() for b in blueprints}
    replacement = blueprint_store_id.encode()
    if any(len(r) != len(replacement) for r in random_ids):
        raise ValueError("the blueprint store id has another length than its replacement")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size - _STREAM_FOOTER.size)
        footer = _STREAM_FOOTER.unpack(fh.read(_STREAM_FOOTER.size))
        manifest_offset, manifest_size, _crc, fourcc, identifier, version = footer
        if (fourcc, identifier) != (b"RRF2", b"FOOT"):
            raise ValueError(f"{path}: no RRD stream footer where expected")
        position = _STREAM_HEADER_BYTES
        while position < size - _STREAM_FOOTER.size:
            fh.seek(position)
            kind, length = _MESSAGE_HEADER.unpack(fh.read(_MESSAGE_HEADER.size))
            start = position + _MESSAGE_HEADER.size
            whole = kind in (_KIND_END, _KIND_SET_STORE_INFO) or length <= _STORE_ID_SEARCH_BYTES
            head = fh.read(length if whole else _STORE_ID_SEARCH_BYTES)
            patched = head
            if kind == _KIND_SET_STORE_INFO:
                if not patched.startswith(_STORE_INFO_ROW_ID) or patched[11:12] != b"\x11":
                    raise ValueError(f"{path}: a SetStoreInfo message of an unknown layout")
                patched = patched[:3] + bytes(8) + patched[11:12] + bytes(8) + patched[20:]
            for random_id in random_ids:
                patched = patched.replace(random_id, replacement)
            if patched != head:
                fh.seek(start)
                fh.write(patched)
            position = start + length
            if kind == _KIND_END:
                if start != manifest_offset or length != manifest_size:
                    raise ValueError(f"{path}: the footer does not point at the end message")
                manifest = canonical_footer(patched)
                fh.seek(position - length - _MESSAGE_HEADER.size)
                fh.write(_MESSAGE_HEADER.pack(kind, len(manifest)))
                fh.write(manifest)
                crc = xxh32(manifest, _FOOTER_CRC_SEED)
                fh.write(
                    _STREAM_FOOTER.pack(start, len(manifest), crc, fourcc, identifier, version)
                )
                fh.truncate()
                break
        else:
            raise ValueError(f"{path}: no end message")


def canonical_footer(payload: bytes) -> bytes:
    """The footer's manifests in one order, each store's schema too. Rerun lists the stores
    and a store's columns in ``HashMap`` order (seeded at random); the schema's hash beside
    it does not depend on the order, and readers find stores and columns by name."""
    manifests = []
    for number, wire, value in _protobuf_fields(payload):
        if (number, wire) != (1, 2):
            raise ValueError("an RRD footer field of an unknown layout")
        fields = []
        for inner_number, inner_wire, inner in _protobuf_fields(value):
            if (inner_number, inner_wire) == (2, 2):  # the store's schema, as Arrow IPC
                inner = _protobuf_message(
                    [(n, w, _sorted_schema(v) if (n, w) == (1, 2) else v)
                     for n, w, v in _protobuf_fields(inner)]
                )  # fmt: skip
            fields.append((inner_number, inner_wire, inner))
        manifests.append((1, 2, _protobuf_message(fields)))
    # One manifest per store, listed in HashMap order too: sort them by their bytes (each
    # starts with its store id).
    return _protobuf_message(sorted(manifests, key=lambda field: field[2]))


def _sorted_schema(ipc_bytes: bytes) -> bytes:
    schema = pa.ipc.open_stream(ipc_bytes).schema
    kinds = {b"control": 0, b"index": 1}
    fields = sorted(
        (f.with_metadata(_sorted_dict(f.metadata)) for f in schema),
        key=lambda f: (kinds.get((f.metadata or {}).get(b"rerun:kind"), 2), f.name),
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema(fields, metadata=_sorted_dict(schema.metadata))):
        pass
    return sink.getvalue().to_pybytes()


def _sorted_dict(metadata: dict[bytes, bytes] | None) -> dict[bytes, bytes] | None:
    return dict(sorted(metadata.items())) if metadata else None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _protobuf_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order: varints as int, the rest as bytes."""
    fields, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = data[i : i + size], i + size
        else:
            raise ValueError(f"protobuf wire type {wire} in an RRD footer")
        fields.append((number, wire, value))
    return fields


def _protobuf_message(fields: list[tuple[int, int, Any]]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _encode_varint(number << 3 | wire)
        if wire == 0:
            out += _encode_varint(value)
        elif wire == 2:
            out += _encode_varint(len(value)) + value
        else:
            out += value
    return bytes(out)


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (the footer checksum Rerun computes with ``xxhash_rust::xxh32``); pure Python,
    for the footer's manifest (tens of KB)."""
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i <= n - 16:
            lanes = struct.unpack_from("<4I", data, i)
            v = [
                _rotl((acc + lane * _P2) & _M32, 13) * _P1 & _M32
                for acc, lane in zip(v, lanes, strict=True)
            ]
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        (k,) = struct.unpack_from("<I", data, i)
        h = _rotl((h + k * _P3) & _M32, 17) * _P4 & _M32
        i += 4
    while i < n:
        h = _rotl((h + data[i] * _P5) & _M32, 11) * _P1 & _M32
        i += 1
    h ^= h >> 15
    h = h * _P2 & _M32
    h ^= h >> 13
    h = h * _P3 & _M32
    h ^= h >> 16
    return h
