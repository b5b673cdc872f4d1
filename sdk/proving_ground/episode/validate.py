"""Validation of uploaded pg-episode/1 files: structure before data, in a bounded child process.

Uploads are untrusted. h5py follows external links, external raw storage (a dataset whose
bytes live in any file on the server, ``/etc/passwd`` included) and virtual datasets on an
ordinary read; a 2.4 KB file can declare 8 TiB; 1 MB of gzip can expand to 1 GiB; and the
HDF5 C library itself may crash on a crafted file. So `validate` works in three phases, each
entered only if the previous found no error:

1. **Bytes** (no h5py): the path is a regular, non-empty file of bounded size with the HDF5
   signature at offset 0. Files with a user block (signature at 512, 1024, ...) are refused.
2. **Structure** (h5py opens the file but reads no dataset and no attribute value): every link
   is walked with ``visititems_links``, which, unlike ``visititems``, reports external and
   soft links instead of following or hiding them. Each dataset's creation property list,
   type and dataspace are inspected: layout (virtual refused), external storage, filters
   (allow-list), chunk size, type class (references and non-byte variable-length sequences
   refused), rank, declared size, and declared size against bytes actually stored (the
   compression ratio). Attributes are checked by type, rank and stored size, unread.
3. **Content** (reads data, in blocks of at most ``read_block_bytes``): root attributes, the
   datasets the embodiment requires with their shapes and dtypes, lengths, finite values,
   strictly increasing timestamps, control and camera rates, a sample of decoded frames and
   frozen cameras. A truncated file (no ``end_time``: the writer crashed) is judged on its
   shortest consistent prefix and gets a ``truncated`` warning, not a rejection.

`validate_isolated` runs `validate` in a fresh interpreter (``python -m
proving_ground.episode.validate``) with an address-space limit and a wall-clock timeout; a
child that runs out of either, or crashes, becomes a report with ``validator_resource_limit``
or ``validator_crashed``, never an exception. The server calls that one.

The phases live in `proving_ground.episode.validate_structure` (bytes and structure) and
`proving_ground.episode.validate_content` (content); the report, its problems and the limits
in `proving_ground.episode.validate_report`.

Problem codes are stable strings (the server stores them); docs/hdf5-format.md lists them.
Reports are shown to the uploader, so they name places inside the HDF5 file, never the file's
place on the server: the report carries no file path, and a message that would quote one
(HDF5's errors name the file they failed on) has it replaced by "the file".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from proving_ground.episode.reader import open_episode_file
from proving_ground.episode.spec import EmbodimentSpec, as_embodiment_spec
from proving_ground.episode.validate_content import check_content
from proving_ground.episode.validate_report import (
    MEMORY_MARKERS,
    Findings,
    Problem,
    ValidationLimits,
    ValidationReport,
    first_line,
    raise_if_out_of_memory,
    without_file_path,
)
from proving_ground.episode.validate_structure import check_bytes, check_structure

log = logging.getLogger(__name__)

# Exit status of the CLI: 0 valid, 1 a report with errors, 2 usage, 3 out of memory.
EXIT_OUT_OF_MEMORY = 3


def validate(
    path: str | os.PathLike[str],
    embodiment_spec: EmbodimentSpec | Mapping[str, Any] | None = None,
    limits: ValidationLimits | None = None,
) -> ValidationReport:
    """Check one episode file; never raises for anything about the file (MemoryError aside).

    With `embodiment_spec` (our dataclass or its dict form) the observations, action and
    cameras must match it; without, every check that needs no spec still runs (each dataset
    consistent with the others and with its own camera attributes). Raises ValueError only
    for a malformed spec, which is the caller's bug.
    """
    spec = as_embodiment_spec(embodiment_spec) if embodiment_spec is not None else None
    limits = limits or ValidationLimits()
    report = ValidationReport()
    findings = Findings(report, limits, path)
    try:
        if not check_bytes(Path(path), findings):
            return report
        try:
            f = open_episode_file(path)
        except OSError as exc:
            raise_if_out_of_memory(exc)
            findings.add("corrupt_file", f"HDF5 cannot open the file: {first_line(exc)}")
            return report
        with f:
            datasets = check_structure(f, findings)
            if findings.has_errors:
                return report
            check_content(f, datasets, spec, findings)
    finally:
        findings.finish()
    return report


def validate_isolated(
    path: str | os.PathLike[str],
    embodiment_spec: EmbodimentSpec | Mapping[str, Any] | None = None,
    limits: ValidationLimits | None = None,
    *,
    memory_mb: int = 512,
    timeout_s: float = 60,
) -> ValidationReport:
    """`validate` in a child interpreter capped at `memory_mb` MiB of address space and
    `timeout_s` seconds of wall clock. Never raises for the file: a child over its limits
    gives a report with ``validator_resource_limit``, any other failure ``validator_crashed``.

    The child is ``python -m proving_ground.episode.validate --config-stdin``; the spec and
    limits go in as JSON on stdin and the report comes back as JSON on stdout.
    """
    spec = as_embodiment_spec(embodiment_spec) if embodiment_spec is not None else None
    limits = limits or ValidationLimits()
    config = json.dumps(
        {
            "path": str(path),
            "spec": spec.to_dict() if spec else None,
            "limits": limits.to_dict(),
            "memory_mb": int(memory_mb),
        }
    )
    project_root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")])),
        # Keep the child's baseline address space small: one BLAS thread, two malloc arenas.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    command = [sys.executable, "-m", "proving_ground.episode.validate", "--config-stdin"]
    try:
        child = subprocess.run(
            command, input=config, capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return _failed(path, "validator_resource_limit", f"validation took over {timeout_s} s")
    except OSError as exc:
        return _failed(path, "validator_crashed", f"could not start the validator: {exc}")
    stderr = child.stderr[-2000:]
    if child.returncode not in (0, 1):
        # For the operator's log; the report only says that the validator failed.
        log.warning("validator exited with status %s: %s", child.returncode, stderr)
    if child.returncode in (0, 1):
        try:
            return ValidationReport.from_dict(json.loads(child.stdout))
        except (ValueError, TypeError) as exc:
            return _failed(path, "validator_crashed", f"unreadable validator output: {exc}")
    if child.returncode == EXIT_OUT_OF_MEMORY or any(m in stderr.lower() for m in MEMORY_MARKERS):
        return _failed(
            path, "validator_resource_limit", f"validation needed over {memory_mb} MiB of memory"
        )
    return _failed(path, "validator_crashed", f"validator exited with status {child.returncode}")


def _failed(path: str | os.PathLike[str], code: str, message: str) -> ValidationReport:
    report = ValidationReport(problems=[Problem(code, without_file_path(message, path))])
    try:
        report.size_bytes = os.stat(path).st_size
    except OSError:
        pass
    return report


def _limit_resources(memory_mb: int) -> None:
    """Applied by the child to itself before it touches the file. Raises MemoryError when the
    cap leaves under 32 MiB beyond what the interpreter already maps: below its own footprint
    it would fail at random places (C code that does not check malloc crashes instead)."""
    import resource

    memory = int(memory_mb) << 20
    try:
        status = Path("/proc/self/status").read_text()
        mapped = int(status.split("VmSize:", 1)[1].split()[0]) << 10
    except (OSError, IndexError, ValueError):
        mapped = 0
    if memory < mapped + (32 << 20):
        raise MemoryError(f"{memory_mb} MiB is below the validator's own footprint")
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The validator never writes a file; anything that tries is killed by SIGXFSZ.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proving_ground.episode.validate",
        description="Validate a pg-episode/1 file; print a JSON report (exit 1 when refused).",
    )
    parser.add_argument("path", nargs="?")
    parser.add_argument("--spec", help="embodiment spec JSON file")
    parser.add_argument("--memory-mb", type=int, help="cap this process's address space")
    parser.add_argument(
        "--config-stdin",
        action="store_true",
        help='read {"path", "spec", "limits", "memory_mb"} as JSON from stdin',
    )
    args = parser.parse_args(argv)
    spec: Any = None
    limits = ValidationLimits()
    path, memory_mb = args.path, args.memory_mb
    if args.config_stdin:
        config = json.loads(sys.stdin.read())
        path, spec = config["path"], config.get("spec")
        limits = ValidationLimits.from_dict(config.get("limits") or {})
        memory_mb = config.get("memory_mb", memory_mb)
    elif args.spec:
        spec = json.loads(Path(args.spec).read_text())
    if not path:
        parser.error("a path is needed")
    try:
        if memory_mb:
            _limit_resources(memory_mb)
        report = validate(path, spec, limits)
        out = json.dumps(report.to_dict(), indent=None if args.config_stdin else 2)
    except MemoryError:
        os.write(2, b"MemoryError\n")
        os._exit(EXIT_OUT_OF_MEMORY)
    print(out)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
