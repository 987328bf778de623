"""What a mesh builder could not build, or built with a fallback.

Every builder takes ``report=``: pass a :class:`MeshReport` to collect skipped features and notes
and print them. Without one, a builder that has to skip a feature raises :class:`DataError` listing
them, so that nothing is ever dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gis.errors import DataError


@dataclass
class MeshReport:
    """Features skipped and fallbacks taken by a mesh builder.

    Attributes:
        skipped: ``(feature index, reason)`` of features that produced no geometry.
        notes: ``(feature index, note)`` of features built with a repair or a fallback (a footprint
            repaired with ``make_valid``, a hip roof built as a pyramid...).
        degenerate: Number of input polygons or line parts left out because they are degenerate
            (zero area, fewer than 3 distinct points); counted, not listed.
    """

    skipped: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    degenerate: int = 0

    def skip(self, index: int, reason: str) -> None:
        """Record a skipped feature."""
        self.skipped.append((int(index), reason))

    def note(self, index: int, note: str) -> None:
        """Record a fallback or a repair."""
        self.notes.append((int(index), note))

    def summary(self, limit: int = 10) -> str:
        """One paragraph for a log: counts, then the first ``limit`` entries of each list."""
        lines = [f"{len(self.skipped)} skipped, {len(self.notes)} notes, "
                 f"{self.degenerate} degenerate parts"]
        for title, items in (("skipped", self.skipped), ("note", self.notes)):
            for index, text in items[:limit]:
                lines.append(f"  {title} feature {index}: {text}")
            if len(items) > limit:
                lines.append(f"  ... {len(items) - limit} more {title}")
        return "\n".join(lines)


def finish(report: MeshReport | None, local: MeshReport) -> None:
    """Hand a builder's findings to the caller.

    Args:
        report: The caller's report, or None.
        local: What the builder found.

    Raises:
        DataError: ``report`` is None and features were skipped.
    """
    if report is not None:
        report.skipped.extend(local.skipped)
        report.notes.extend(local.notes)
        report.degenerate += local.degenerate
        return
    if local.skipped:
        raise DataError(f"{len(local.skipped)} features could not be meshed (pass report= to "
                        f"collect them and go on):\n{local.summary()}")
