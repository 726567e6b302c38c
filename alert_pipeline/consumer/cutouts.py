"""FITS cutouts: the structural check, the file name, and staging writes off the main thread."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from alert_pipeline.durable import create_new

FITS_BLOCK = 2880
CARD = 80
#: How far a primary header is searched for its END card.
MAX_HEADER_BLOCKS = 100
#: One writer thread: creates in one directory contend in the kernel, so a second one cost
#: more than it saved (README, "Measured design choices").
STAGING_THREADS = 1
#: Ids that become file names must fit a signed 64-bit integer (as Rubin's ids do).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def fits_problem(data: bytes) -> str | None:
    """Why ``data`` is not a FITS file, or None when it is one.

    A structural check of the primary header (block size, SIMPLE = T, BITPIX, NAXIS, END)
    and of the primary data size the header declares, microseconds per cutout; full
    parsing would cost more than decoding the alert.
    """
    if len(data) < FITS_BLOCK:
        return f"{len(data)} bytes: shorter than one FITS block"
    if len(data) % FITS_BLOCK:
        return f"{len(data)} bytes: not a whole number of 2880-byte FITS blocks"
    if not data.startswith(b"SIMPLE  =") or data[29:30] != b"T":
        return "does not start with the card SIMPLE = T"
    end = _end_card(data, min(len(data), MAX_HEADER_BLOCKS * FITS_BLOCK))
    if end is None:
        return "no END card in the primary header"
    return _primary_size_problem(_size_cards(data, end), header_bytes=-(-(end + CARD) // FITS_BLOCK) * FITS_BLOCK, total=len(data))


def _end_card(data: bytes, limit: int) -> int | None:
    """Where the first card whose keyword is END starts (a multiple of 80 below
    ``limit``), or None: ``bytes.find`` scans in C, the few places END appears are
    then checked (on a card boundary, then only whitespace to the keyword's end)."""
    position = data.find(b"END", 0, limit)
    while position != -1:
        if position % CARD == 0 and not data[position + 3 : position + 8].strip():
            return position
        position = data.find(b"END", position + 1, limit)
    return None


def _size_cards(data: bytes, end: int) -> dict[bytes, bytes]:
    """{keyword: value} of the BITPIX and NAXIS* cards before ``end``, a later card of a
    keyword overriding an earlier one, found by searching for the two names (in C)
    rather than reading every card."""
    cards: dict[bytes, bytes] = {}
    for name in (b"BITPIX", b"NAXIS"):
        position = data.find(name, 0, end)
        while position != -1:
            if position % CARD == 0:
                keyword = data[position : position + 8].rstrip()
                if keyword == b"BITPIX" or keyword.startswith(b"NAXIS"):
                    cards[keyword] = data[position + 10 : position + CARD].split(b"/")[0].strip()
            position = data.find(name, position + 1, end)
    return cards


def _primary_size_problem(cards: dict[bytes, bytes], header_bytes: int, total: int) -> str | None:
    missing = {b"BITPIX", b"NAXIS"} - set(cards)
    if missing:
        return f"header lacks {b', '.join(sorted(missing)).decode()}"
    try:
        bitpix, naxis = int(cards[b"BITPIX"]), int(cards[b"NAXIS"])
        axes = [int(cards[f"NAXIS{axis}".encode()]) for axis in range(1, naxis + 1)]
    except (KeyError, ValueError):
        return "BITPIX, NAXIS or an NAXISn card is missing or not an integer"
    if bitpix not in (8, 16, 32, 64, -32, -64) or not 0 <= naxis <= 999 or any(n < 0 for n in axes):
        return f"invalid BITPIX {bitpix} or axes {axes}"
    data_bytes = abs(bitpix) // 8
    for length in axes:
        data_bytes *= length
    if naxis == 0:
        data_bytes = 0
    needed = header_bytes + -(-data_bytes // FITS_BLOCK) * FITS_BLOCK
    if needed > total:
        return f"truncated: the header declares {data_bytes} data bytes but the file holds only {total} bytes"
    return None


def id_for_file_name(value: object) -> int | None:
    """``value`` as an id fit for a file name: an integer within int64, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def cutout_name(dia_source_id: int, kind: str, processed_at: dt.datetime) -> str:
    """``<diaSourceId>_<kind>_<YYYYMMDD>_<HHMMSS>.fits`` (the store numbers a second alert
    of the same source and second ``…_2.fits``, so no cutout ever overwrites another)."""
    return f"{int(dia_source_id)}_{kind}_{_stamp(processed_at)}.fits"


@functools.lru_cache(maxsize=8)
def _stamp(processed_at: dt.datetime) -> str:
    """``YYYYMMDD_HHMMSS``: formatted once per batch, not once per file."""
    return f"{processed_at:%Y%m%d_%H%M%S}"


def _write_files(files: list[tuple[str, bytes]]) -> None:
    for path, data in files:
        create_new(path, data)  # os-level calls: the thread takes the GIL back less often


def wait_for_writes(pending: list[Future]) -> None:
    """Wait for every one of these staged writes; raise the first failure."""
    errors = [future.exception() for future in pending]
    failure = next((error for error in errors if error is not None), None)
    if failure is not None:
        raise failure


class CutoutStager:
    """Writes cutouts under a private ``incoming`` directory on a background thread.

    File I/O releases the GIL, so the disk works while the next alert is decoded.
    ``wait`` collects the writes (raising the first OSError, e.g. a full disk) before the
    batch is made durable. Safe across ``fork``: a worker process gets its own pool.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self._pending: list[Future] = []

    def stage_many(self, files: list[tuple[str, bytes]]) -> list[str]:
        """Start writing several files in one task; their staged paths, in order (not yet
        durable, not visible)."""
        if self._pool_pid != os.getpid():  # first use, or a forked worker process
            self._pool = ThreadPoolExecutor(max_workers=STAGING_THREADS, thread_name_prefix="stage")
            self._pool_pid, self._pending = os.getpid(), []
            # Unique across processes and runs; one random token per process, then a counter
            # (a uuid4 per file is a system call that gives up the GIL to the staging threads).
            self._token, self._numbers = uuid.uuid4().hex[:16], itertools.count()
        paths = [os.path.join(self.directory, f"{self._token}{next(self._numbers):x}-{name}") for name, _ in files]
        self._pending.append(self._pool.submit(_write_files, list(zip(paths, (data for _, data in files),
                                                                          strict=True))))
        return paths

    def wait(self) -> None:
        """Wait for every staged write; raise the first failure."""
        wait_for_writes(self.take_pending())

    def take_pending(self) -> list[Future]:
        """The writes started so far, to be waited for elsewhere (``wait_for_writes``):
        the runner lets the batch writer wait for them while the next batch is decoded."""
        pending, self._pending = self._pending, []
        return pending

    def discard_all(self) -> None:
        """Forget everything staged (a batch that will not be written, or a restart)."""
        with contextlib.suppress(OSError):
            self.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
        os.makedirs(self.directory, exist_ok=True)
