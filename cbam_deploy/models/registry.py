"""Name -> builder registries for attention variants and host networks.

Entry functions only fix defaults (the timm pattern); a bad name raises ``ValueError`` listing the
valid ones with a close-match suggestion (the torchvision pattern).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import UsageError


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str


class Registry:
    """A named collection of builders; duplicate registration raises."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry] = {}

    def register(self, name: str, *, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = RegistryEntry(name, builder, description)
            return builder

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in self._entries if fnmatch.fnmatch(n, pattern)]

    def get(self, name: str) -> RegistryEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(unknown_name_message(self.kind, name, list(self._entries))) from None

    def entries(self) -> list[RegistryEntry]:
        return list(self._entries.values())


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """'unknown variant 'dualbn' (did you mean 'dual_bn'?); valid: a, b, c'."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


VARIANTS = Registry("variant")
HOSTS = Registry("host network")
