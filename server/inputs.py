"""Rules for the text people type in (team and member names, messages, reasons), one place for the API schemas,
the pages and the service functions.

Names are one printable line: no control characters (NUL is refused by PostgreSQL's text columns, newlines and
tabs break the boards and exports) and no invisible format characters (a right-to-left override makes a name
render as another). Longer texts may hold line breaks and tabs, never other control characters.
"""

from __future__ import annotations

from server.errors import InvalidInput
from submissions.competition import control_character

MAX_NAME_CHARS = 100  # teams.name is VARCHAR(100)
MAX_MEMBER_CHARS = 100
MAX_MEMBERS = 50
MAX_MESSAGE_CHARS = 500  # a submission's note to itself, the same for the API and the form
MAX_REASON_CHARS = 2000  # an organizer's reason, shown to the team


def printable_line(value: str, *, field: str, max_chars: int) -> str:
    """The value without surrounding blanks; InvalidInput (422) if blank, too long or holding control characters."""
    value = value.strip()
    if not value:
        raise InvalidInput(f"The {field} is blank; give it at least one visible character.")
    _check(value, field=field, max_chars=max_chars, multiline=False)
    return value


def plain_text(value: str, *, field: str, max_chars: int) -> str:
    """Free text (may be empty, may span lines) without surrounding blanks, bounded, without control characters."""
    value = value.strip()
    _check(value, field=field, max_chars=max_chars, multiline=True)
    return value


def _check(value: str, *, field: str, max_chars: int, multiline: bool) -> None:
    if len(value) > max_chars:
        raise InvalidInput(f"The {field} has {len(value):,} characters; the most allowed is {max_chars}. Shorten it.")
    bad = control_character(value, multiline=multiline)  # the rule competition.json's texts follow too
    if bad is not None:
        allowed = "line breaks and tabs are the only control characters allowed" if multiline else \
            "use letters, digits, punctuation and spaces on one line"
        raise InvalidInput(f"The {field} holds the control character U+{ord(bad):04X}; {allowed}.")


def team_name(value: str) -> str:
    return printable_line(value, field="team name", max_chars=MAX_NAME_CHARS)


def member_name(value: str) -> str:
    return printable_line(value, field="member name", max_chars=MAX_MEMBER_CHARS)


def member_names(values: list[str]) -> list[str]:
    if len(values) > MAX_MEMBERS:
        raise InvalidInput(f"A team lists {len(values)} members; the most allowed is {MAX_MEMBERS}.")
    return [member_name(v) for v in values]


def submission_message(value: str) -> str:
    return plain_text(value, field="submission message", max_chars=MAX_MESSAGE_CHARS)


def reason_text(value: str) -> str:
    return plain_text(value, field="reason", max_chars=MAX_REASON_CHARS)
