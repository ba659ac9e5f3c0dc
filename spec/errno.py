"""Kernel error numbers and the failure value the model returns in their place.

The kernel returns negative errno values and prints a line; the model returns both, so a
result can be compared with a boot log to the letter.
"""

from __future__ import annotations

from dataclasses import dataclass

EIO = 5
ENOMEM = 12
EACCES = 13
EBUSY = 16
ENODEV = 19
EINVAL = 22
ENOSPC = 28
EOPNOTSUPP = 95

ERRNO_NAMES = {
    EIO: "EIO",
    ENOMEM: "ENOMEM",
    EACCES: "EACCES",
    EBUSY: "EBUSY",
    ENODEV: "ENODEV",
    EINVAL: "EINVAL",
    ENOSPC: "ENOSPC",
    EOPNOTSUPP: "EOPNOTSUPP",
}


@dataclass(frozen=True)
class KernelError:
    """A failure as the kernel reports it: the negative errno and the line it printed (if any)."""

    errno: int
    message: str | None = None

    def __post_init__(self) -> None:
        if self.errno >= 0:
            raise ValueError("kernel errors are negative errno values")

    @property
    def name(self) -> str:
        return ERRNO_NAMES.get(-self.errno, str(-self.errno))
