"""The signed-convention follow-up (issue 9): deadlines, convention statuses, and the actions the
connector takes on DS for the instructeurs, each recorded first in a journal (exactly-once effects)."""
