"""Errors topo raises on purpose.

Every error a user can cause or meet (a broken scenario, a missing Docker engine, an image
that cannot be built, a run that cannot start) is a ``TopoError``. The CLI catches it once,
prints its message as one line on stderr and exits with its ``exit_code``; anything else is
a bug and shows a traceback only with ``--debug``.

    TopoError             root; exit 1
    ├── ScenarioError     the scenario file is unreadable or invalid; exit 2 (usage)
    ├── EngineError       no Docker engine answers, or it refused a request
    ├── RequirementError  workload.requirements cannot be met with wheels for the image; exit 2
    ├── ImageError        an image is missing or could not be built
    │   └── UnusableImageError  workload.image is missing or has no usable Python; exit 2
    ├── RunError          a run could not be carried out (deploy failed, workers never ready)
    └── ResultError       a saved result file cannot be read
"""

from __future__ import annotations


class TopoError(Exception):
    """Root of topo's errors; ``str(err)`` is the one line shown to the user."""

    exit_code = 1


class ScenarioError(TopoError):
    """The scenario is invalid. The message names file, line and dotted field."""

    exit_code = 2


class EngineError(TopoError):
    """The Docker engine is unreachable or refused a request."""


class RequirementError(TopoError):
    """A requirement does not resolve, or has no wheel for the worker image's Python and
    platform (topo never builds from source). The message names the requirement."""

    exit_code = 2


class ImageError(TopoError):
    """An image topo needs is missing or could not be built."""


class UnusableImageError(ImageError):
    """The scenario's own image (``workload.image``) is not here, or has no Python topo can
    run its agent with. Found before anything starts."""

    exit_code = 2


class RunError(TopoError):
    """A run could not be carried out."""


class ResultError(TopoError):
    """A saved result file is missing, unreadable or of an unknown schema."""
