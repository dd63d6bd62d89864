"""Enforcement: what a request and its client certificate mean, for every adapter.

Shared by the reverse proxy (:mod:`edgerules.proxy`) and the ASGI/WSGI middleware
(:mod:`edgerules.asgi`, :mod:`edgerules.wsgi`); it does no I/O and knows no sockets, TLS
records or HTTP framing.

Modules:

* ``request_fields``  ``RequestInfo`` and the rule fields of one request (only those the
                      ruleset reads)
* ``decision``        the decision hook (``RulesetDecider``, ``Verdict``) and block pages
* ``forwarding``      header rules between client and origin: hop-by-hop removal,
                      stripping client-sent certificate headers, ``ForwardingPolicy``
* ``certheaders``     client certificates forwarded by a trusted proxy in a header
* ``gate``            the middleware core: certificate source, trusted proxies,
                      header stripping, decision, block response
"""
