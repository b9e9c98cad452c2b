"""A wrapper that keeps secret values out of logs, reprs, tracebacks and the audit trail."""

from __future__ import annotations


class Secret:
    """Holds a secret string; only ``reveal()`` gives the value back."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __reduce__(self):  # pickling would copy the value somewhere we cannot see
        raise TypeError("Secret values are not picklable")
