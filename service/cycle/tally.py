"""The one count of a sync cycle: each study's verdict and the problems found, in order.

The phases return verdicts and problems; only the tally takes them, and the report's
``checked``, ``new``, ``changed``, ``unchanged`` and ``failed`` are derived from it once, at
the end. A study's last verdict is the one that counts: a record stored as ``new`` whose
write or findings review then fails is ``failed``, not both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from service.problems import Problem

# new: first sighting; changed: a new version with a reportable change (or no longer served);
# unchanged: same content, only cosmetic differences, or another process's version; failed
Verdict = Literal["new", "changed", "unchanged", "failed"]


class Tally:
    """Verdicts by study and the cycle's problems (see the module docstring)."""

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        self._verdicts: dict[str, Verdict] = {}
        self.problems: list[Problem] = []
        # told how many studies are done whenever that grows (the command line's bar)
        self._progress = progress or (lambda _done: None)

    def __contains__(self, study_id: object) -> bool:
        """Whether the study is done with this cycle (whatever its verdict)."""
        return study_id in self._verdicts

    def counted(self, study_id: str) -> bool:
        """Whether the study went through this cycle (checked, and not failed)."""
        return self._verdicts.get(study_id, "failed") != "failed"

    def give(self, verdicts: Mapping[str, Verdict]) -> None:
        done = len(self._verdicts)
        self._verdicts.update(verdicts)
        self._told(done)

    def note(self, problems: Iterable[Problem]) -> None:
        """Keep ``problems``; an error fails its study (which is then done with the cycle)."""
        done = len(self._verdicts)
        for problem in problems:
            self.problems.append(problem)
            if problem.is_error:
                self._verdicts[problem.study_id] = "failed"
        self._told(done)

    def counts(self) -> dict[str, int]:
        """The report's counts: every study done is checked, once, under its last verdict."""
        by_verdict = Counter(self._verdicts.values())
        counts = {verdict: by_verdict[verdict] for verdict in ("new", "changed", "unchanged")}
        return {"checked": len(self._verdicts), **counts, "failed": by_verdict["failed"]}

    def _told(self, before: int) -> None:
        if len(self._verdicts) != before:
            self._progress(len(self._verdicts))
