"""The package's one atomic file writer.

Every file the package writes (images, weights, training states, TFLite
models, JSON and CSV reports, packed data) goes through ``atomic_path``: the
content is written to a hidden temporary file in the destination's folder,
flushed to disk, and renamed over the destination. A crash or a kill at any
moment leaves either the old file or the new one, never half a file, and an
error removes the temporary file.

The temporary file is created with mode 0o666 through ``os.open``, so the
kernel applies the process umask: the result has the permissions a plain
``open(path, "w")`` would give, without reading the umask (``os.umask`` sets
it process-wide, which is not thread-safe).
"""

import contextlib
import os
import re
import secrets

# ``.<name>.<pid>-<8 hex>.tmp<suffix>``: the temporary files and folders of this module.
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp")


def _temporary_name(path, suffix):
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder, names=None):
    """Removes the temporary files a killed writer left in ``folder``.

    Only names of this module's pattern whose process is gone (and not this
    process) are touched; with ``names``, only the temporaries of those
    destination file names. A run that resumes after ``kill -9`` calls this.

    Returns:
        The removed paths.
    """
    import shutil

    removed = []
    for name in sorted(os.listdir(folder)):
        match = _TEMPORARY.match(name)
        if not match or int(match.group(1)) == os.getpid() or _running(int(match.group(1))):
            continue
        if names is not None and not any(name.startswith(f".{n}.") for n in names):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path to write; renames it to ``path`` on success.

    For writers that insist on a file name (``model.save_weights`` wants a
    name ending in ``.weights.h5``: pass it as ``suffix``). The yielded file
    already exists (empty, with umask-respecting permissions); the writer
    overwrites it. It is fsync'ed before the rename.

    Args:
        path: the destination; its folder must exist.
        suffix: ending of the temporary file's name.

    Raises:
        FileNotFoundError: if the destination's folder does not exist.
    """
    tmp = _temporary_name(path, suffix)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write(path, write, suffix=""):
    """Calls ``write(binary_file)`` on a temporary file, then renames it to ``path``.

    Args:
        path: the destination.
        write: a callable taking an open binary file object.
        suffix: ending of the temporary file's name.
    """
    with atomic_path(path, suffix) as tmp:
        with open(tmp, "wb") as f:
            write(f)


def atomic_write_bytes(path, data):
    """Writes ``bytes`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text):
    """Writes a ``str`` to ``path`` atomically, UTF-8 encoded."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path, overwrite=False):
    """Yields a temporary folder to fill; renames it to ``path`` on success.

    An existing ``path`` is replaced only with ``overwrite`` (it is removed
    just before the rename). On an error the temporary folder is removed and
    ``path`` is left as it was.

    Raises:
        FileExistsError: if ``path`` exists and not ``overwrite``.
    """
    import shutil

    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists")
    tmp = _temporary_name(path, "")
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
