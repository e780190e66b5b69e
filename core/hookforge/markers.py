"""The pluggy markers. ``hookimpl`` is public (re-exported by ``hookforge``); ``hookspec`` is
only used by :mod:`hookforge.hookspecs`."""

from __future__ import annotations

import pluggy

PROJECT = "hookforge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
