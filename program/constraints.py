"""Declared constraints that report a broken value with its expected form in words.

Pydantic checks ``StringConstraints``, ``Field(ge=, le=, min_length=)`` and ``Literal`` by itself, but says
``String should match pattern '^[a-z0-9][a-z0-9-]*$'``. :func:`expected` keeps the declaration and replaces
that message with the form a reader of the stack config understands.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import StringConstraints, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

_CONSTRAINT_ERRORS: Final = frozenset(
    {
        "string_pattern_mismatch",
        "string_too_short",
        "string_too_long",
        "greater_than_equal",
        "less_than_equal",
        "literal_error",
        "too_short",
        "tuple_type",
    }
)
"""Pydantic's error types for a value of the wrong form as a whole (not of the wrong type, like ``five`` for
a number, whose own message already says what was expected)."""


def name_part(max_length: int) -> StringConstraints:
    """1 to ``max_length`` characters of ``a-z 0-9 -``, starting with a letter or digit: a part of a name."""
    return StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=max_length)


def expected(form: str) -> WrapValidator:
    """Put after a constraint (``Annotated[str, StringConstraints(...), expected("expected ...")]``): a value
    that breaks it is reported as ``form``, in which ``{value}`` stands for the value's repr.

    Problems in parts of the value (an item of a list) are reported as they are. Pydantic checks a tuple's
    length after its items, so a tuple whose every item failed is also "too short": that follows from the
    items' problems and is left out."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            problems = error.errors()
            parts = [problem for problem in problems if problem["loc"]]
            if parts and len(parts) < len(problems):
                raise ValidationError.from_exception_data(
                    error.title,
                    [
                        InitErrorDetails(
                            type=PydanticCustomError(part["type"], part["msg"]),
                            loc=part["loc"],
                            input=part["input"],
                        )
                        for part in parts
                    ],
                ) from None
            if not parts and all(problem["type"] in _CONSTRAINT_ERRORS for problem in problems):
                raise PydanticCustomError("expected_form", form, {"value": repr(value)}) from None
            raise

    return WrapValidator(validate)
