"""Locked, atomic, durable read-modify-write of files, safe across threads and processes.

``txfile`` takes the lock on a sibling guard file ``<name>.lock`` that each
process opens once and never closes while locked (so an unrelated ``open`` and
``close`` of the data file cannot drop it), writes the new contents to a
temporary file in the same directory, fsyncs it, renames it over the target
and fsyncs the directory. Readers see the old or the new version, never a mix;
after a crash the file holds one of them.

    >>> import txfile
    >>> counter = txfile.TxFile("counter")                      # doctest: +SKIP
    >>> counter.update(lambda old: b"%d" % (int(old or b"0") + 1))  # doctest: +SKIP
"""

from __future__ import annotations


class Error(OSError):
    """Any failure of txfile.

    A subclass of :class:`OSError`: ``errno`` is set when an operating-system
    call failed, ``filename`` (and ``filename2`` for a rename) name the file
    involved, and the message names the operation, the path and the cause.
    """

    def __str__(self) -> str:
        # The message already names the path: OSError's default format
        # ("[Errno 2] ...: 'path'") would repeat it.
        return self.strerror if self.strerror is not None else super().__str__()


class LockTimeout(Error, TimeoutError):
    """The lock was not acquired within the handle's ``timeout``."""


class ConflictError(Error):
    """A program not using txfile changed the file during the transaction.

    Its version was kept and the new contents discarded.
    """


from txfile._txfile import Batch, Transaction, TxFile, __version__  # noqa: E402

__all__ = [
    "Batch",
    "ConflictError",
    "Error",
    "LockTimeout",
    "Transaction",
    "TxFile",
    "__version__",
]
