"""Task families: generators of problems whose answers a program checks (the ``task`` kind).

Each family is a class registered in the entry-point group ``hookforge.tasks`` (see
:class:`~hookforge_lm.tasks.base.Task`); this package holds the built-in ones: ``arith``,
``sat``, ``abd`` and ``ded``.
"""
