"""The one error of the privacy library: a value or a parameter it cannot work with."""

from __future__ import annotations


class OperatorError(ValueError):
    """Bad parameters, or a value an operator cannot transform; ``field`` says where, when known."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field
