"""A module whose own import fails: a dependency missing from the image."""

import not_installed_dependency  # noqa: F401


def run(task_id: int) -> None:
    return None
