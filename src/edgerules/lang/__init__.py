"""The Rules language core: text -> AST -> checked AST -> Python closures.

This package owns everything about the language and nothing else: no certificates,
stores, sockets or CLI (``tests/test_layering.py`` checks it). The public entry points
are re-exported from :mod:`edgerules` (``edgerules.compile``, ``Filter``, ``Scheme``, …).

Modules, in the order a rule passes through them:

* ``source``    rule text, spans, the caret renderer
* ``parser``    text -> ``ast`` (the only module that imports Lark; ``rules.lark`` is the grammar)
* ``ast``       the syntax tree with spans; ``formatter`` prints it canonically
* ``types``     the value types and their run-time representation
* ``scheme``    the field scheme (``fields`` is Cloudflare's catalogue as data)
* ``checker``   names and types; ``functions`` the function table; ``regex`` (RE2 in
                Rust's dialect), ``wildcard`` and ``ipset`` the literal matchers
* ``compiler``  checked AST -> closures over a ``context`` slot list
* ``engine``    ``compile``/``parse``/``format`` and ``Filter``, tying it together
* ``errors``    the language's errors (derived from :class:`edgerules.errors.RuleError`)
"""
