"""Typed errors raised by softmass_core.

Every error carries a message written for the person at the keyboard: what was
wrong and what to do next.  The dashboard shows ``str(err)`` in an ``st.error``
box and the command line prints it on one line with exit status 2, so no
message may rely on a traceback to make sense.
"""

from __future__ import annotations


class SoftmassError(Exception):
    """Base class of every error the core raises on bad input or bad files."""


class ImageError(SoftmassError):
    """An image file could not be read (empty, truncated, not an image, too big)."""


class DecoderMissingError(ImageError):
    """A compressed DICOM needs a pixel-data decoder that is not installed."""


class RoiError(SoftmassError):
    """A region of interest is malformed, empty or outside the image."""


class ManifestError(SoftmassError):
    """A weight set's manifest.json is missing, malformed or inconsistent."""


class WeightsError(SoftmassError):
    """A weight file is missing, fails its checksum or does not fit its model."""


class CohortError(SoftmassError):
    """A cohort CSV has bad rows; ``problems`` lists every one of them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            shown = self.problems[:20]
            more = len(self.problems) - len(shown)
            message = message + "\n" + "\n".join(f"  - {p}" for p in shown)
            if more > 0:
                message += f"\n  ... and {more} more"
        super().__init__(message)


class MetricsError(SoftmassError):
    """Scores or labels handed to a metric are malformed."""


class StoreError(SoftmassError):
    """The reader-study database refused an operation."""
