"""The one error type of competition data preparation."""

from __future__ import annotations


class DataPreparationError(ValueError):
    """Input data or the output directory is unusable; the message names the path, the rule and the fix."""

    def __init__(self, message: str, problems: list[str] | None = None, *, shown: int = 50) -> None:
        self.problems = list(problems or [])
        if self.problems:
            listed = self.problems[:shown]
            more = len(self.problems) - len(listed)
            message += "\n" + "\n".join(f"  - {problem}" for problem in listed)
            if more:
                message += f"\n  ... and {more} more"
        super().__init__(message)
