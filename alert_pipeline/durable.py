"""Durable-file helpers shared by the consumer's outputs and the event storehouse.

Nothing here knows about alerts: atomic replacement, whole writes, one ``syncfs`` per
batch, safe file-name fragments, and ``checkpoint``, the named points where the crash
tests may stop the process (a no-op unless a hook is installed with
``set_checkpoint_hook``; the test launcher installs ``devtools/faults.py``'s).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import stat
import threading
from collections.abc import Callable
from typing import BinaryIO

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

#: Installed only by the crash tests' launcher; production runs never pay more than this
#: one attribute lookup per checkpoint.
_checkpoint_hook: Callable[[str], None] | None = None


def set_checkpoint_hook(hook: Callable[[str], None] | None) -> None:
    """Call ``hook(name)`` at every ``checkpoint`` (None: do nothing again)."""
    global _checkpoint_hook
    _checkpoint_hook = hook


def checkpoint(name: str) -> None:
    """A named instant of a batch (``after-journal``, ``before-commit`` …) where the crash
    tests may kill the process; does nothing otherwise."""
    if _checkpoint_hook is not None:
        _checkpoint_hook(name)


def fsync_directory(path: str) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


try:
    _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
except (OSError, AttributeError):  # not Linux
    _syncfs = None


def sync_filesystem(path: str) -> None:
    """Flush everything written on the filesystem holding ``path`` (one call per batch).

    One ``syncfs`` costs far less than an fsync per cutout file (README, "Measured design
    choices").
    """
    if _syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", path)
    finally:
        os.close(fd)


#: The longest file name most file systems take (bytes).
NAME_MAX = 255
#: A temp file of ``write_atomically`` (either form of ``temp_name``); group 1 is the pid of the
#: process writing it, so one that a killed run left can be told from a live run's.
TEMP_NAME = re.compile(r"\.tmp-(\d+)(?:-\d+)?$")


def temp_name(path: str) -> str:
    """The temp file ``write_atomically`` writes ``path`` through: ``<path>.tmp-<pid>``, or,
    when that name would be too long for the file system, ``<dir>/.tmp-<pid>-<thread>`` (a
    name of 250 bytes can be replaced like any other; threads of one process never share one)."""
    temp = f"{path}.tmp-{os.getpid()}"
    if len(os.fsencode(os.path.basename(temp))) <= NAME_MAX:
        return temp
    return os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{threading.get_ident()}")


def write_atomically(path: str, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory (``temp_name``) and a
    rename. The temp file is created anew (``x``: a link planted under its name is not followed)."""
    temp = temp_name(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)  # left by a crashed run of the same pid
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_directory(os.path.dirname(path) or ".")


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a full disk raises, never half-succeeds)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def create_new(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, which must not exist yet (``FileExistsError``); a failed
    write leaves no file. For a new file this is much cheaper than temp file + rename
    (renames are serialised per directory). Its mode is ``open()``'s: 0o666 less the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    os.close(fd)


def open_no_follow(path: str, flags: int) -> int:
    """``os.open`` that never follows a final symbolic link: a link planted in ``data/``
    or ``state/`` must not make the run read, append to or cut a file elsewhere."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{path} is a symbolic link; the pipeline does not write or cut a file "
                                       "through one (remove the link)") from None
        raise


class NotRegularFile(OSError):
    """A path that is a link (when links are not followed), a FIFO, a device, a socket or a
    directory: never read, since it could hang a run or fill its memory."""


def not_regular(mode: int) -> str:
    """What a file of ``mode`` is when it is not a regular file ("a FIFO", "a device"), or ''."""
    kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
             stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}
    kind = stat.S_IFMT(mode)
    return "" if kind == stat.S_IFREG else kinds.get(kind, "not a regular file")


def open_regular(path: str, follow_links: bool = False) -> BinaryIO:
    """``path`` opened for reading when it is a regular file: the one rule for every input
    the tools read (retention deletes by the same rule; ``open_regular_fd`` applies it).
    ``NotRegularFile`` says what the path is."""
    fd, _ = open_regular_fd(path, follow_links)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def open_regular_fd(path: str, follow_links: bool = False) -> tuple[int, os.stat_result]:
    """``path``'s descriptor and status when it is a regular file. ``O_NONBLOCK`` makes a FIFO
    open without waiting for a writer, so it is refused instead of hanging; the check is made on
    what was opened (``fstat``), so nothing can be swapped in between. A link inside an
    output directory is never followed; a path a user names may be a link to a regular file
    (``follow_links``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise NotRegularFile(errno.ELOOP, "a symbolic link (not followed)", path) from None
        raise
    found = os.fstat(fd)
    what = not_regular(found.st_mode)
    if what:
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, what, path)
    return fd, found


def read_up_to(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd`` (fewer only at its end): one read for a file that has
    them, then at most a MiB a read (a file that grew meanwhile costs what it grew by)."""
    data = os.read(fd, size)
    if not data or len(data) >= size:
        return data
    parts, got = [data], len(data)
    while got < size and (more := os.read(fd, min(size - got, 1 << 20))):
        parts.append(more)
        got += len(more)
    return data if len(parts) == 1 else b"".join(parts)


def append_durably(path: str, data: bytes) -> None:
    """Append ``data`` in one write and fsync it (never through a symbolic link)."""
    fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_name(text: str) -> str:
    """A file-name fragment: anything outside [A-Za-z0-9._-] becomes '_'."""
    return _SAFE_NAME.sub("_", text).strip(".") or "_"
