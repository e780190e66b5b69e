"""The pluggy markers and plugin manager. ``hookimpl`` is public (re-exported by ``hookforge``);
``hookspec`` is only used by :mod:`hookforge.hookspecs`."""

from __future__ import annotations

import pluggy

PROJECT = "hookforge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, looking for hook implementations only among ``hookforge_*`` names.

    pluggy inspects every attribute of a registered object (``inspect.getattr_static``, so that
    properties are not run): about 0.5 ms per component, 2 ms per run, a tax every trial of a
    search pays. Every hook is named ``hookforge_<something>``, so only such names are looked at
    (an implementation under another attribute name, through pluggy's ``specname``, is not
    supported)."""

    def __init__(self) -> None:
        super().__init__(PROJECT)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if not name.startswith("hookforge_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)
