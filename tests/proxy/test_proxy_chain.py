"""Composition: edgerules proxy (TLS + mTLS, forwards Client-Cert) in front of a Starlette
app served by uvicorn whose EdgeRulesMiddleware trusts the proxy's address — the setup the
ASGI docs describe. Skipped when uvicorn (not a declared dependency) is absent."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings

import pytest
from proxy_helpers import MTLS_HOST, Client, make_validator, running_proxy

from edgerules.asgi import EdgeRulesMiddleware
from edgerules.enforcement.decision import Verdict

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def uvicorn_app(pki):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    from edgerules.rulesets import Ruleset

    ruleset = Ruleset.from_dict(
        {
            "name": "app",
            "rules": [
                {
                    "ref": "need_cert",
                    "expression": "not cf.tls_client_auth.cert_verified",
                    "action": "block",
                }
            ],
        }
    )

    async def whoami(request):
        auth = request.scope["edgerules.client_auth"]
        return JSONResponse({"verified": auth.verified, "serial": auth.fields()["cf.tls_client_auth.cert_serial"].decode()})

    app = Starlette(routes=[Route("/whoami", whoami)])
    app.add_middleware(
        EdgeRulesMiddleware, ruleset=ruleset, validator=make_validator(pki), trusted_proxies=["127.0.0.1/32"]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_proxy_in_front_of_asgi_app(pki, uvicorn_app):
    allow = lambda fields, auth: Verdict("allow")  # noqa: E731 - the app decides here
    with running_proxy(f"http://127.0.0.1:{uvicorn_app}", validator=make_validator(pki), decide=allow) as p:
        with Client(p.port, cert=pki.valid) as c:
            status, _, body = c.request("GET", "/whoami")
        assert status == 200, body
        assert pki.valid.serial_hex in body.decode()
        # no certificate: the proxy forwards (its rule allows), no Client-Cert travels,
        # and the app's own rule blocks
        with Client(p.port) as c:
            assert c.request("GET", "/whoami")[0] == 403
        # a client forging Client-Cert through the proxy gets nowhere either
        import base64

        forged = ":" + base64.b64encode(pki.valid.der).decode() + ":"
        with Client(p.port, sni=MTLS_HOST) as c:
            assert c.request("GET", "/whoami", headers={"Client-Cert": forged})[0] == 403
