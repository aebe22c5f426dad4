"""Writing artifacts so that nothing half-written is ever left where a user would pick it up.

One way output is staged and committed:

- :func:`check_target` refuses an existing output (without ``force``) or an unwritable folder
  before any work is done (orchestrators call it first);
- :func:`staged_directory` builds a folder in a hidden ``.NAME.XXXX.partial`` beside the target,
  under a lock on the target (a second writer is refused at once), and publishes it with a rename
  that never replaces: of two writers racing for the same target exactly one wins, the other gets
  a ``UsageError`` and the winner's folder is untouched;
- :func:`atomic_write_bytes` writes one file through a temporary file and a rename.

Staging folders and temporary files are removed in ``finally`` blocks, at interpreter exit, and by
the CLI's signal handling (``interrupts``); renames that publish run with signals held.
OSErrors become one-line errors naming the folder (exit 3 for permissions / a full disk).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from . import interrupts
from .errors import UsageError, from_os_error

_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100
# Errors of a write that carry no file name (file.write): while staging, they concern the staging folder.
_FULL_OR_BROKEN = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EIO", "EFBIG") if hasattr(errno, n))
_LIVE: set[Path] = set()  # staging folders and temporary files of this process, removed on any exit


def _cleanup_live() -> None:
    for path in list(_LIVE):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        _LIVE.discard(path)


atexit.register(_cleanup_live)
interrupts.add_cleanup(_cleanup_live)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _renameat2() -> object | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:  # no C library to ask (not Linux)
        return None


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst``; raise ``FileExistsError`` if ``dst`` exists, atomically.

    Linux ``renameat2(RENAME_NOREPLACE)``; elsewhere (or on a file system without it) a plain
    ``os.rename``, which also refuses a non-empty folder, after a check.
    """
    func = _renameat2()
    if func is not None:
        if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        raise


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_target(target: str | Path, *, force: bool) -> Path:
    """Refuse early: ``target`` exists and ``force`` is off (exit 2), or its folder cannot be
    written (exit 3). Creates nothing. Returns ``target`` as a ``Path``."""
    target = Path(target)
    if os.path.lexists(target):
        if not force:
            raise UsageError(f"{str(target)!r} already exists; pass --force to overwrite it")
        if not target.is_dir() or target.is_symlink():
            raise UsageError(f"{str(target)!r} exists and is not a folder; remove it yourself, --force replaces "
                             "only a model folder")
    _check_writable_parent(target, repr(str(target)))
    return target


def check_output_file(path: str | Path, *, force: bool, option: str = "") -> Path:
    """Refuse early, for a single output file (a report, a picture): it exists and ``force`` is off
    (exit 2), it is a folder (exit 2), or its folder cannot be written (exit 3). Creates nothing."""
    path = Path(path)
    label = f"{option} {str(path)!r}" if option else repr(str(path))
    if path.is_dir():
        raise UsageError(f"{label} is a folder, not a file")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{label} already exists; pass --force to overwrite it")
    _check_writable_parent(path, label)
    return path


def _check_writable_parent(path: Path, label: str) -> None:
    """The nearest existing folder above ``path`` must be a folder this process can write in."""
    folder = _existing_ancestor(path.parent)
    if not folder.is_dir():
        raise UsageError(f"cannot write {label}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise from_os_error(PermissionError(errno.EACCES, "permission denied or read-only folder", str(folder)),
                            "write in")


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders created (to remove them again on failure)."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, "create folder") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    created = _make_parents(path.parent)
    tmp: Path | None = None
    try:
        with interrupts.critical():  # from creating the file to registering it: no signal between
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
            out = os.fdopen(fd, "wb")  # owns the descriptor from here (closed with it on any exit)
            tmp = Path(name)
            _LIVE.add(tmp)
        with out as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are shared (e.g. with Triton)
        with interrupts.critical():
            os.replace(tmp, path)
            _LIVE.discard(tmp)
            tmp = None
    except OSError as exc:
        raise from_os_error(exc, "write") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
            _LIVE.discard(tmp)
            _remove_empty(created)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _publish_permissions(staging: Path) -> None:
    mask = _umask()  # mkdtemp makes 0700: shared artifacts (e.g. read by Triton) get the umask's modes
    for folder, _, files in os.walk(staging):
        os.chmod(folder, 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o666 & ~mask)


def _commit(staging: Path, target: Path, *, force: bool) -> None:
    """Publish ``staging`` as ``target`` (signals held): never over a folder that appeared meanwhile
    unless ``force``; with ``force`` the old folder is swapped out and back in on failure."""
    appeared = UsageError(f"{str(target)!r} appeared while this command ran (another process wrote it); it was "
                          "left as it is and nothing was written; pass --force to overwrite it")
    with interrupts.critical():
        if not (force and os.path.lexists(target)):
            try:
                rename_noreplace(staging, target)
            except FileExistsError:
                raise appeared from None
            return
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        _LIVE.add(retired)
        os.replace(target, retired / target.name)
        try:
            rename_noreplace(staging, target)
        except BaseException:
            os.replace(retired / target.name, target)
            raise
        shutil.rmtree(retired, ignore_errors=True)
        _LIVE.discard(retired)


@contextlib.contextmanager
def staged_directory(target: str | Path, *, force: bool) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``target``; on success it becomes ``target``.

    On any failure (exception, Ctrl-C, SIGTERM under the CLI) the staging folder is removed, folders
    created for it are removed again, and ``target`` is untouched. An existing ``target`` is refused
    unless ``force``; so is a target another process is writing right now.
    """
    target = check_target(target, force=force)
    created = _make_parents(target.parent)
    staging: Path | None = None
    try:
        with target_lock(target):
            check_target(target, force=force)  # the previous holder of the lock may have just written it
            _remove_stale_staging(target)
            try:
                with interrupts.critical():  # from creating the folder to registering it: no signal between
                    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
                    _LIVE.add(staging)
            except OSError as exc:
                raise from_os_error(exc, "write in") from None
            try:
                yield staging
            except OSError as exc:  # writing into the staging folder failed: name the target, not .NAME.XXXX.partial
                inside = exc.filename is not None and str(exc.filename).startswith(str(staging))
                if not inside and not (exc.filename is None and exc.errno in _FULL_OR_BROKEN):
                    raise
                raise from_os_error(OSError(exc.errno, exc.strerror, str(target)), "write") from None
            try:
                _publish_permissions(staging)
                _commit(staging, target, force=force)
            except OSError as exc:
                raise from_os_error(OSError(exc.errno, exc.strerror, str(target)), "write") from None
            created = []
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            _LIVE.discard(staging)
        _remove_empty(created)


def _remove_stale_staging(target: Path) -> None:
    """Staging folders of ``target`` left by a process that was killed outright (SIGKILL, power loss):
    every writer holds the target's lock, and we hold it now, so none of them is alive."""
    import re

    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.partial")
    for entry in target.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def target_lock(target: str | Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` (``flock``, released if the process dies; the file is
    removed afterwards). A second holder is refused with a ``UsageError`` at once."""
    target = Path(target)
    lock = target.parent / f".{target.name}.lock"
    fd: int | None = None
    try:
        # Signals held from creating the file to owning it (and registering it for cleanup): a signal
        # landing in between would leave a .NAME.lock that nobody removes.
        with interrupts.critical():
            fd = _acquire(lock, target)
            _LIVE.add(lock)
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                lock.unlink()
            _LIVE.discard(lock)
            os.close(fd)


def _acquire(lock: Path, target: Path) -> int:
    """Open and ``flock`` ``lock`` (created if missing); the descriptor, or a UsageError if another
    process holds it."""
    import fcntl

    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise from_os_error(exc, "write in") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"another process is writing {str(target)!r} right now; nothing was written "
                             "(wait for it, or pick another --name)") from None
        try:  # the previous holder may have removed the file between our open and flock: retry then
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def check_name(name: str, what: str = "--name") -> str:
    """A model name is one plain folder name (it is also Triton's model name): no path separators,
    no ``..``, not hidden (hidden names are where staging folders live)."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", name) or ".." in name:
        raise UsageError(f"{what} {name!r} is not a plain model name: use letters, digits, '_', '-' and '.', "
                         "starting with a letter, digit or '_' (no '/', no '..')")
    return name
