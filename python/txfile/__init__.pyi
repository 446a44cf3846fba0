import os
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Literal, Optional, Union, final

from typing_extensions import Buffer, Self

__all__ = [
    "Batch",
    "ConflictError",
    "Error",
    "LockTimeout",
    "Transaction",
    "TxFile",
    "__version__",
]

__version__: str

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
_Durability = Literal["full", "none"]
_LockStyle = Literal["flock", "posix"]
_Symlinks = Literal["follow", "replace", "reject"]

class Error(OSError): ...
class LockTimeout(Error, TimeoutError): ...
class ConflictError(Error): ...

@final
class TxFile:
    def __new__(
        cls,
        path: _Path,
        *,
        timeout: Optional[float] = None,
        durability: _Durability = "full",
        lock_style: _LockStyle = "flock",
        symlinks: _Symlinks = "follow",
        mode: Optional[int] = None,
    ) -> Self: ...
    @property
    def path(self) -> str: ...
    @property
    def guard_path(self) -> str: ...
    def read(self) -> Optional[bytes]: ...
    def update(self, fn: Callable[[Optional[bytes]], Buffer], /) -> None: ...
    def begin(self) -> Transaction: ...
    def try_begin(self) -> Optional[Transaction]: ...

@final
class Transaction:
    @property
    def path(self) -> str: ...
    @property
    def old(self) -> Optional[bytes]: ...
    def write(self, data: Buffer, /) -> int: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
        /,
    ) -> bool: ...

@final
class Batch:
    def __new__(
        cls,
        paths: Iterable[_Path],
        *,
        timeout: Optional[float] = None,
        durability: _Durability = "full",
        lock_style: _LockStyle = "flock",
        symlinks: _Symlinks = "follow",
        mode: Optional[int] = None,
    ) -> Self: ...
    @property
    def paths(self) -> list[str]: ...
    def update(
        self, fn: Callable[[list[Optional[bytes]]], Sequence[Buffer]], /
    ) -> None: ...
    def read(self) -> list[Optional[bytes]]: ...
