"""Types of command-line option values shared by the subcommands (`cli`, `gate.verify`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def integer_at_least(minimum: int, words: str, maximum: int | None = None,
                     holder: str = "") -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum`; `words` says so in the error. With
    `maximum`, at most that, the error saying what cannot hold more (`holder`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be {words}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than {holder} ({maximum})")
        return value

    return parse
