"""Saving scikit-learn objects with skops, and loading them back without running code.

skops refuses types it does not trust by default; we trust scikit-learn's own classes and the few
numpy/tree types its estimators contain, and nothing else, so a tampered file naming some other
class is rejected instead of being imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookforge.errors import CheckpointError

TRUSTED_TYPES = {"numpy.dtype", "sklearn.tree._tree.Tree"}
TRUSTED_PREFIXES = ("sklearn.",)


def dump(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)


def load(path: Path) -> Any:
    import skops.io as sio

    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged archive: skops raises zipfile/json errors
        raise CheckpointError(f"{path} is not a readable skops file ({exc})") from None
    refused = [t for t in untrusted if t not in TRUSTED_TYPES and not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise CheckpointError(f"{path} contains types that are not trusted for loading: "
                              f"{', '.join(refused)}")
    return sio.load(path, trusted=untrusted)
