"""Progress of a long management command, on the command's stderr: a tqdm bar on a terminal, else a plain
line every so often and one at the end (logs and pipes get no carriage returns)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from typing import TypeVar

from django.core.management.base import OutputWrapper
from tqdm import tqdm

T = TypeVar("T")


class Progress:
    """Counts work done under `label`, out of `total` when it is known; `unit` follows the count."""

    def __init__(
        self,
        stderr: OutputWrapper,
        label: str,
        *,
        total: int | None,
        every: int,
        initial: int = 0,
        unit: str = "",
    ) -> None:
        self._stderr, self._label, self._total, self._every, self._unit = stderr, label, total, every, unit
        self._count = self._reported = initial
        self._bar: tqdm[None] | None = None
        if stderr.isatty():
            self._bar = tqdm(
                desc=label,
                total=total,
                initial=initial,
                unit=unit or " items",
                file=_BarStream(stderr),
                ncols=shutil.get_terminal_size().columns,
                leave=True,
            )

    def update(self, n: int = 1) -> None:
        self._count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._count - self._reported >= self._every:
            self._reported = self._count
            self._stderr.write(f"{self._line()}…")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            self._stderr.write(f"{self._line()}, done.")

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """The same items, counted as they are consumed; closed once they are all consumed."""
        for item in items:
            yield item
            self.update()
        self.close()

    def _line(self) -> str:
        of = f" of {self._total:,}" if self._total is not None else ""
        return f"{self._label}: {self._count:,}{of}{self._unit}"


class _BarStream:
    """The command's stderr as tqdm writes to it: the text as it is (no newline added, no error colour)."""

    def __init__(self, stderr: OutputWrapper) -> None:
        self._stderr = stderr

    def write(self, text: str) -> None:
        self._stderr.write(text, style_func=_as_is, ending="")

    def flush(self) -> None:
        self._stderr.flush()


def _as_is(text: str) -> str:
    return text
