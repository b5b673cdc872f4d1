"""Validation phases 1 and 2: the bytes (no h5py), then the structure (h5py opens the file but
reads no dataset and no attribute value). See `proving_ground.episode.validate` for why.

1. **Bytes**: the path is a regular, non-empty file of bounded size with the HDF5 signature
   at offset 0. Files with a user block (signature at 512, 1024, ...) are refused.
2. **Structure**: every link is walked with ``visititems_links``, which, unlike
   ``visititems``, reports external and soft links instead of following or hiding them. Each
   dataset's creation property list, type and dataspace are inspected: layout (virtual
   refused), external storage, filters (allow-list), chunk size, type class (references and
   non-byte variable-length sequences refused), rank, declared size, and declared size against
   bytes actually stored (the compression ratio). Attributes are checked by type, rank and
   stored size, unread.
"""

from __future__ import annotations

import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5s, h5t, h5z

from proving_ground.episode.validate_report import Findings, first_line, raise_if_out_of_memory

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filters whose decoders ship with HDF5 or h5py and are bounded by the ratio check: deflate
# (gzip), shuffle, fletcher32 (checksum) and LZF. SZIP, N-bit, scale-offset (lossy) and every
# dynamically loaded plugin are refused.
ALLOWED_FILTERS = {
    h5z.FILTER_DEFLATE: "deflate",
    h5z.FILTER_SHUFFLE: "shuffle",
    h5z.FILTER_FLETCHER32: "fletcher32",
    32000: "lzf",
}


def check_bytes(path: Path, findings: Findings) -> bool:
    """Phase 1: True when `path` is a regular, non-empty file within ``max_file_bytes`` with
    the HDF5 signature at offset 0; otherwise a problem is added and False returned."""
    limits = findings.limits
    try:
        info = path.stat()
    except FileNotFoundError:
        findings.add("missing_file", "no such file")
        return False
    except OSError as exc:
        findings.add("unreadable_file", f"cannot stat the file: {exc.strerror}")
        return False
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or stream forever.
        findings.add("not_a_regular_file", "the path is not a regular file")
        return False
    findings.report.size_bytes = size = info.st_size
    if size == 0:
        findings.add("empty_file", "the file is empty")
        return False
    if size > limits.max_file_bytes:
        findings.add("file_too_large", f"{size} bytes, over the limit of {limits.max_file_bytes}")
        return False
    with path.open("rb") as fh:
        if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                findings.add(
                    "userblock_refused",
                    f"HDF5 signature at offset {offset}: files with a user block are refused",
                )
                return False
            offset *= 2
    findings.add("not_hdf5", "no HDF5 signature at offset 0")
    return False


@dataclass(frozen=True)
class DatasetInfo:
    """What the structure phase learnt of one dataset, without reading it."""

    shape: tuple[int, ...]
    dtype: np.dtype | None  # None when numpy has no equivalent
    chunk_rows: int


def _type_problem(tid: h5t.TypeID, depth: int = 0) -> str | None:
    """The problem code of an HDF5 datatype, or None when it is allowed.

    Allowed: integers, floats, complex, bitfields, opaque, enums (h5py's bool), strings
    (fixed or variable length), variable-length bytes, and compounds and arrays of those.
    References point elsewhere in (or outside) the file; other variable-length sequences
    become numpy object arrays of arrays. Both are refused.
    """
    if depth > 8:
        return "unsupported_dtype"
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        return "reference_dtype"
    if cls == h5t.VLEN:
        base = tid.get_super()
        if base.get_class() == h5t.INTEGER and base.get_size() == 1:
            return None
        return _type_problem(base, depth + 1) or "object_dtype"
    if cls == h5t.COMPOUND:
        for i in range(tid.get_nmembers()):
            problem = _type_problem(tid.get_member_type(i), depth + 1)
            if problem:
                return problem
        return None
    if cls == h5t.ARRAY:
        return _type_problem(tid.get_super(), depth + 1)
    allowed = {h5t.INTEGER, h5t.FLOAT, h5t.STRING, h5t.BITFIELD, h5t.OPAQUE, h5t.ENUM}
    allowed.add(getattr(h5t, "COMPLEX", h5t.FLOAT))
    return None if cls in allowed else "unsupported_dtype"


def _space_shape(space: h5s.SpaceID) -> tuple[int, ...]:
    if space.get_simple_extent_type() == h5s.NULL:
        return (0,)
    return tuple(int(n) for n in space.shape)


def check_structure(f: h5py.File, findings: Findings) -> dict[str, DatasetInfo]:
    """Walk every link; return the datasets (path -> info) if nothing was refused."""
    limits = findings.limits
    datasets: dict[str, DatasetInfo] = {}
    declared_total = 0
    count = 0

    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> Any:
        nonlocal declared_total, count
        count += 1
        if count > limits.max_objects:
            findings.add("too_many_objects", f"over {limits.max_objects} links in the file")
            return True  # stops the walk
        path = "/" + name
        if len(name.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
            findings.add("name_too_long", f"a name over {limits.max_name_bytes} bytes", path[:300])
            return None
        if isinstance(link, h5py.ExternalLink):
            findings.add("external_link", "external links are refused", path)
            return None
        if isinstance(link, h5py.SoftLink):
            findings.add("soft_link", "soft links are refused", path)
            return None
        if not isinstance(link, h5py.HardLink):
            findings.add("unsupported_link", "user-defined links are refused", path)
            return None
        try:
            obj = f.get(path)
            _check_attributes(obj, path, findings)
            if isinstance(obj, h5py.Dataset):
                info, declared = _check_dataset(obj, path, findings)
                declared_total += declared
                if info is not None:
                    datasets[path] = info
            elif isinstance(obj, h5py.Datatype):
                problem = _type_problem(obj.id)
                if problem:
                    findings.add(problem, "named datatype of a refused class", path)
        except Exception as exc:  # a crafted object h5py cannot describe
            raise_if_out_of_memory(exc)
            findings.add("unreadable_object", f"cannot inspect: {first_line(exc)}", path)
        return None

    try:
        _check_attributes(f, "/", findings)
        f.visititems_links(visit)
    except Exception as exc:
        raise_if_out_of_memory(exc)
        findings.add("corrupt_file", f"walking the file failed: {first_line(exc)}")
    if declared_total > limits.max_total_bytes:
        findings.add(
            "declared_size_too_large",
            f"datasets declare {declared_total} bytes in all, over {limits.max_total_bytes}",
            "/",
        )
    return datasets


def _check_attributes(obj: h5py.HLObject, path: str, findings: Findings) -> None:
    limits = findings.limits
    n = len(obj.attrs)
    if n > limits.max_attributes_per_object:
        findings.add(
            "too_many_attributes", f"{n} attributes, over {limits.max_attributes_per_object}", path
        )
        return
    for name in obj.attrs:
        where = f"{path}@{name}"[:300]
        if len(name.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
            findings.add(
                "name_too_long", f"an attribute name over {limits.max_name_bytes} bytes", where
            )
            continue
        aid = obj.attrs.get_id(name)
        tid = aid.get_type()
        problem = _type_problem(tid)
        if problem:
            findings.add(problem, "attribute of a refused datatype", where)
            continue
        shape = _space_shape(aid.get_space())
        if len(shape) > limits.max_rank:
            findings.add("rank_too_high", f"attribute of rank {len(shape)}", where)
            continue
        declared = math.prod(shape) * tid.get_size()
        if max(declared, aid.get_storage_size()) > limits.max_attribute_bytes:
            findings.add(
                "attribute_too_large",
                f"attribute of {declared} bytes, over {limits.max_attribute_bytes}",
                where,
            )


def _check_dataset(
    dset: h5py.Dataset, path: str, findings: Findings
) -> tuple[DatasetInfo | None, int]:
    """Check one dataset's metadata. Returns its info (None if refused) and declared bytes."""
    limits = findings.limits
    refused = False

    def refuse(code: str, message: str) -> None:
        nonlocal refused
        refused = True
        findings.add(code, message, path)

    dsid = dset.id
    dcpl = dsid.get_create_plist()
    # Layout and external storage first: for these, even asking the extent may touch files.
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        refuse("virtual_dataset", "virtual datasets are refused (they read other files)")
        return None, 0
    if dcpl.get_external_count() > 0:
        refuse("external_storage", "datasets stored in external files are refused")
        return None, 0
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    unknown = [code for code in filters if code not in ALLOWED_FILTERS]
    if unknown:
        refuse(
            "unknown_filter", f"filter id(s) {unknown} not in {sorted(ALLOWED_FILTERS.values())}"
        )
    tid = dsid.get_type()
    problem = _type_problem(tid)
    if problem:
        refuse(problem, "dataset of a refused datatype")
    shape = _space_shape(dsid.get_space())
    if len(shape) > limits.max_rank:
        refuse("rank_too_high", f"rank {len(shape)}, over {limits.max_rank}")
        return None, 0
    itemsize = tid.get_size()
    declared = math.prod(shape) * itemsize
    if declared > limits.max_dataset_bytes:
        refuse(
            "declared_size_too_large",
            f"declares {declared} bytes, over the limit of {limits.max_dataset_bytes}",
        )
    chunk_rows = 0
    if layout == h5d.CHUNKED:
        chunk = dcpl.get_chunk()
        chunk_bytes = math.prod(chunk) * itemsize
        if chunk_bytes > limits.max_chunk_bytes:
            refuse("chunk_too_large", f"chunks of {chunk_bytes} bytes")
        chunk_rows = int(chunk[0]) if chunk else 0
    stored = dsid.get_storage_size()
    if (
        not refused
        and declared >= limits.compression_check_min_bytes
        and declared > stored * limits.max_compression_ratio
    ):
        if filters:
            refuse(
                "compression_ratio_too_high",
                f"{stored} stored bytes expand to {declared} "
                f"(ratio over {limits.max_compression_ratio:g})",
            )
        else:
            refuse(
                "declared_size_too_large",
                f"declares {declared} bytes but stores only {stored}",
            )
    if refused:
        return None, declared
    try:
        dtype: np.dtype | None = dset.dtype
    except (TypeError, ValueError):
        dtype = None
    return DatasetInfo(shape, dtype, chunk_rows), declared
