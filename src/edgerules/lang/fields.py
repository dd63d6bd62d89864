"""The Cloudflare field catalogue, as data
(https://developers.cloudflare.com/ruleset-engine/rules-language/fields/reference/).

This module owns the list of fields of Cloudflare's default scheme, their types, the
deprecated aliases and a one-line description of each. It computes nothing; the scheme
(``edgerules.lang.scheme.default_scheme``) is built from it.

Invariants:

* ``CLOUDFLARE_FIELDS`` holds every field of Cloudflare's fields reference exactly
  once, with the type the reference gives (``ip.src.lat``/``lon`` are Strings, not numbers;
  ``cf.bot_management.static_resource`` is Boolean — the older Number typing is the
  mistake of an older version of Cloudflare's field data).
* Every name in ``FIELD_ALIASES`` (old spelling) maps to a name in ``CLOUDFLARE_FIELDS``
  and is not itself a field.
* ``FIELD_DOCS`` has exactly one entry per field of ``CLOUDFLARE_FIELDS``.

Choices on points Cloudflare leaves open: ``cf.zone.name`` (seen only in API examples) is
included as a String; Magic/Network-Firewall fields (``tcp.dstport`` …) are out of scope and absent;
JWT claim maps come with their ``.names``/``.values`` arrays as the reference's type column
describes them.
"""

from __future__ import annotations

from typing import Final

from edgerules.lang.types import BOOL, BYTES, INT, IP, Array, Map, Type

__all__ = ["CLOUDFLARE_FIELDS", "FIELD_ALIASES", "FIELD_DOCS"]

_S = BYTES
_AS = Array(BYTES)
_AAS = Array(Array(BYTES))
_MAS = Map(Array(BYTES))

# (name, type, one-line meaning). Grouped by topic.
_CATALOGUE: tuple[tuple[str, Type, str], ...] = (
    # --- mTLS client certificate -------------------------------------------------
    ("cf.tls_client_auth.cert_presented", BOOL, "The client sent a certificate (valid or not)."),
    ("cf.tls_client_auth.cert_verified", BOOL,
     "The presented certificate chains to a CA accepted for the hostname and is valid (also true when revoked)."),
    ("cf.tls_client_auth.cert_revoked", BOOL,
     "The presented certificate is valid but revoked (cert_verified is then true too)."),
    ("cf.tls_client_auth.cert_subject_dn", _S, "Subject DN of the leaf, RFC 2253 style (CN first)."),
    ("cf.tls_client_auth.cert_issuer_dn", _S, "Issuer DN of the leaf, RFC 2253 style (CN first)."),
    ("cf.tls_client_auth.cert_subject_dn_rfc2253", _S, "Subject DN of the leaf in RFC 2253 format."),
    ("cf.tls_client_auth.cert_issuer_dn_rfc2253", _S, "Issuer DN of the leaf in RFC 2253 format."),
    ("cf.tls_client_auth.cert_subject_dn_legacy", _S,
     "Subject DN of the leaf, legacy OpenSSL oneline format (/C=../CN=..)."),
    ("cf.tls_client_auth.cert_issuer_dn_legacy", _S,
     "Issuer DN of the leaf, legacy OpenSSL oneline format (/C=../CN=..)."),
    ("cf.tls_client_auth.cert_serial", _S, "Serial number of the leaf, uppercase hex."),
    ("cf.tls_client_auth.cert_issuer_serial", _S, "Serial number of the issuing CA certificate, uppercase hex."),
    ("cf.tls_client_auth.cert_fingerprint_sha256", _S, "SHA-256 of the leaf's DER, lowercase hex."),
    ("cf.tls_client_auth.cert_fingerprint_sha1", _S, "SHA-1 of the leaf's DER, lowercase hex."),
    ("cf.tls_client_auth.cert_not_before", _S, "Start of the leaf's validity (Mon DD HH:MM:SS YYYY GMT)."),
    ("cf.tls_client_auth.cert_not_after", _S, "End of the leaf's validity (Mon DD HH:MM:SS YYYY GMT)."),
    ("cf.tls_client_auth.cert_ski", _S, "Subject Key Identifier of the leaf, uppercase hex."),
    ("cf.tls_client_auth.cert_issuer_ski", _S, "Subject Key Identifier of the issuing CA, uppercase hex."),
    ("cf.tls_client_auth.cert_rfc9440", _S, "The leaf as an RFC 9440 Client-Cert value (\"\" if over 10 KiB)."),
    ("cf.tls_client_auth.cert_rfc9440_too_large", BOOL, "The encoded leaf exceeded 10 KiB."),
    ("cf.tls_client_auth.cert_chain_rfc9440", _S,
     "Intermediates as sent by the client, as an RFC 9440 Client-Cert-Chain value (\"\" if over 16 KiB)."),
    ("cf.tls_client_auth.cert_chain_rfc9440_too_large", BOOL, "The encoded chain exceeded 16 KiB."),
    # --- other TLS / connection --------------------------------------------------
    ("ssl", BOOL, "The client connection is encrypted (HTTPS)."),
    ("cf.tls_version", _S, "TLS version of the client connection (\"\" over plaintext)."),
    ("cf.tls_cipher", _S, "Negotiated TLS cipher (BoringSSL naming)."),
    ("cf.tls_client_hello_length", INT, "Byte length of the ClientHello."),
    ("cf.tls_client_random", _S, "The 32-byte ClientHello random, Base64."),
    ("cf.tls_client_extensions_sha1", _S, "SHA-1 of the client's TLS extension list, Base64 (big-endian)."),
    ("cf.tls_client_extensions_sha1_le", _S, "SHA-1 of the client's TLS extension list, Base64 (little-endian)."),
    ("cf.tls_ciphers_sha1", _S, "SHA-1 of the client's cipher list in received order, Base64."),
    ("cf.bot_management.ja3_hash", _S, "JA3 TLS fingerprint."),
    ("cf.bot_management.ja4", _S, "JA4 TLS fingerprint."),
    ("cf.edge.server_ip", IP, "Cloudflare address the request hit."),
    ("cf.edge.server_port", INT, "Cloudflare port that received the request."),
    ("cf.edge.client_tcp", BOOL, "The request arrived over TCP."),
    ("cf.edge.l4.delivery_rate", INT, "Latest delivery-rate estimate in bytes/s (0 if unavailable)."),
    ("cf.timings.client_tcp_rtt_msec", INT, "Smoothed TCP RTT client-edge in ms (0 for QUIC)."),
    ("cf.timings.client_quic_rtt_msec", INT, "Smoothed QUIC RTT client-edge in ms (0 for TCP)."),
    # --- request line, URI, host -------------------------------------------------
    ("http.host", _S, "Host header of the original request."),
    ("http.request.method", _S, "Request method, uppercase."),
    ("http.request.version", _S, "HTTP version (HTTP/1.1, HTTP/3, ...)."),
    ("http.request.full_uri", _S, "Scheme + host + path + query (no fragment)."),
    ("http.request.uri", _S, "Path + ? + query."),
    ("http.request.uri.path", _S, "URI path only."),
    ("http.request.uri.path.extension", _S, "Lowercased extension of the last path segment (\"\" if none)."),
    ("http.request.uri.query", _S, "Query string without the leading ?."),
    ("http.request.uri.args", _MAS, "Query arguments: name -> values in request order, undecoded."),
    ("http.request.uri.args.names", _AS, "Query argument names in order, duplicates kept."),
    ("http.request.uri.args.values", _AS, "Query argument values in order, duplicates kept."),
    ("http.request.timestamp.sec", INT, "UNIX time in seconds when the request was received."),
    ("http.request.timestamp.msec", INT, "Millisecond part (0-999) of the request timestamp."),
    ("raw.http.request.full_uri", _S, "Immutable original of http.request.full_uri."),
    ("raw.http.request.uri", _S, "Immutable original of http.request.uri."),
    ("raw.http.request.uri.path", _S, "Immutable original of http.request.uri.path."),
    ("raw.http.request.uri.path.extension", _S, "Immutable original of http.request.uri.path.extension."),
    ("raw.http.request.uri.query", _S, "Immutable original of http.request.uri.query."),
    ("raw.http.request.uri.args", _MAS, "Immutable original of http.request.uri.args."),
    ("raw.http.request.uri.args.names", _AS, "Immutable original of http.request.uri.args.names."),
    ("raw.http.request.uri.args.values", _AS, "Immutable original of http.request.uri.args.values."),
    # --- headers, cookies, body --------------------------------------------------
    ("http.request.headers", _MAS, "Request headers: lowercased name -> values in order."),
    ("http.request.headers.names", _AS, "Request header names in original case."),
    ("http.request.headers.values", _AS, "Request header values aligned with .names."),
    ("http.request.headers.truncated", BOOL, "Too many headers; the header fields may be incomplete."),
    ("http.request.accepted_languages", _AS, "Accept-Language tags sorted by q descending."),
    ("http.cookie", _S, "The entire Cookie header."),
    ("http.request.cookies", _MAS, "Cookies: URL-decoded name -> raw values."),
    ("http.user_agent", _S, "User-Agent header."),
    ("http.referer", _S, "Referer header."),
    ("http.x_forwarded_for", _S, "Full X-Forwarded-For header value."),
    ("http.request.body.raw", _S, "Raw request body (may be truncated)."),
    ("http.request.body.truncated", BOOL, "The body fields are incomplete."),
    ("http.request.body.size", INT, "Full body size in bytes."),
    ("http.request.body.mime", _S, "MIME type sniffed from the body content."),
    ("http.request.body.form", _MAS, "URL-encoded form fields: name -> values, undecoded."),
    ("http.request.body.form.names", _AS, "Form field names in order."),
    ("http.request.body.form.values", _AS, "Form field values in order."),
    ("http.request.body.multipart", _MAS, "Multipart body: part name -> values."),
    ("http.request.body.multipart.names", _AAS, "Names of each multipart part."),
    ("http.request.body.multipart.values", _AS, "Value of each multipart part."),
    ("http.request.body.multipart.content_types", _AAS, "Content-Type of each multipart part."),
    ("http.request.body.multipart.content_dispositions", _AAS,
     "Content-Disposition of each multipart part."),
    ("http.request.body.multipart.content_transfer_encodings", _AAS,
     "Content-Transfer-Encoding of each multipart part."),
    ("http.request.body.multipart.filenames", _AAS, "Filenames of each multipart part."),
    *(
        item
        for claim in ("aud", "iss", "jti", "sub")
        for item in (
            (f"http.request.jwt.claims.{claim}", _MAS, f"JWT '{claim}' claims per token configuration."),
            (f"http.request.jwt.claims.{claim}.names", _AS, f"Token configuration names of the JWT '{claim}' claims."),
            (f"http.request.jwt.claims.{claim}.values", _AS, f"Values of the JWT '{claim}' claims."),
        )
    ),
    *(
        item
        for claim in ("iat", "nbf")
        for item in (
            (f"http.request.jwt.claims.{claim}.sec", Map(Array(INT)), f"JWT '{claim}' claims (seconds) per token configuration."),
            (f"http.request.jwt.claims.{claim}.sec.names", _AS, f"Token configuration names of the JWT '{claim}' claims."),
            (f"http.request.jwt.claims.{claim}.sec.values", Array(INT), f"Values of the JWT '{claim}' claims (seconds)."),
        )
    ),
    # --- client IP and geolocation -----------------------------------------------
    ("ip.src", IP, "Client IP address."),
    ("ip.src.asnum", INT, "AS number of the client address."),
    ("ip.src.country", _S, "ISO 3166-1 alpha-2 country code (T1 = Tor)."),
    ("ip.src.continent", _S, "Continent code (AF AN AS EU NA OC SA, T1 = Tor)."),
    ("ip.src.city", _S, "City of the client address."),
    ("ip.src.lat", _S, "Latitude of the client address (a String)."),
    ("ip.src.lon", _S, "Longitude of the client address (a String)."),
    ("ip.src.postal_code", _S, "Postal code of the client address."),
    ("ip.src.metro_code", _S, "DMA metro code of the client address."),
    ("ip.src.region", _S, "Region name of the client address."),
    ("ip.src.region_code", _S, "Region code of the client address."),
    ("ip.src.subdivision_1_iso_code", _S, "ISO 3166-2 first-level subdivision (\"\" if unknown)."),
    ("ip.src.subdivision_2_iso_code", _S, "ISO 3166-2 second-level subdivision (\"\" if unknown)."),
    ("ip.src.is_in_european_union", BOOL, "The client's country is in the EU list."),
    ("ip.src.timezone.name", _S, "Time zone name of the client address."),
    # --- Cloudflare-computed -----------------------------------------------------
    ("cf.ray_id", _S, "Ray ID of the request."),
    ("cf.random_seed", _S, "Per-request random bytes (for uuidv4())."),
    ("cf.hostname.metadata", _S, "Custom-hostname metadata JSON (SaaS)."),
    ("cf.worker.upstream_zone", _S, "Zone of the calling Worker (\"\" if not from a Worker)."),
    ("cf.threat_score", INT, "Legacy threat score; always 0 now."),
    ("cf.client.bot", BOOL, "Known good bot (same as cf.bot_management.verified_bot)."),
    ("cf.verified_bot_category", _S, "Category of the verified bot."),
    ("cf.bot_management.score", INT, "Bot score 1-99 (low = bot)."),
    ("cf.bot_management.verified_bot", BOOL, "Known good bot."),
    ("cf.bot_management.static_resource", BOOL, "Request for a static resource."),
    ("cf.bot_management.js_detection.passed", BOOL, "Passed JavaScript detection."),
    ("cf.bot_management.detection_ids", Array(INT), "Heuristic bot detection IDs."),
    ("cf.bot_management.corporate_proxy", BOOL, "Request from a known corporate proxy."),
    ("cf.bot_management.signed_agent", BOOL, "Web Bot Auth signed agent."),
    ("cf.waf.score", INT, "WAF attack score 1-99 (100 = not scored)."),
    ("cf.waf.score.sqli", INT, "WAF SQL-injection attack score 1-99."),
    ("cf.waf.score.xss", INT, "WAF XSS attack score 1-99."),
    ("cf.waf.score.rce", INT, "WAF remote-code-execution attack score 1-99."),
    ("cf.waf.score.class", _S, "WAF score class: attack, likely_attack, likely_clean, clean."),
    ("cf.waf.auth_detected", BOOL, "Credentials detected in the request."),
    ("cf.waf.credential_check.password_leaked", BOOL, "The password was found in a leak."),
    ("cf.waf.credential_check.username_and_password_leaked", BOOL, "The username/password pair was leaked."),
    ("cf.waf.credential_check.username_leaked", BOOL, "The username was found in a leak."),
    ("cf.waf.credential_check.username_password_similar", BOOL, "A similar username/password pair was leaked."),
    ("cf.waf.content_scan.has_obj", BOOL, "The request contains scannable content objects."),
    ("cf.waf.content_scan.has_malicious_obj", BOOL, "A content object is malicious."),
    ("cf.waf.content_scan.has_failed", BOOL, "Content scanning failed for an object."),
    ("cf.waf.content_scan.num_obj", INT, "Number of content objects."),
    ("cf.waf.content_scan.num_malicious_obj", INT, "Number of malicious content objects."),
    ("cf.waf.content_scan.obj_sizes", Array(INT), "Sizes of the content objects in bytes."),
    ("cf.waf.content_scan.obj_types", _AS, "MIME types of the content objects."),
    ("cf.waf.content_scan.obj_results", _AS, "Scan results: clean, suspicious, infected, not scanned."),
    ("cf.api_gateway.auth_id_present", BOOL, "API Shield: the session identifier is present."),
    ("cf.api_gateway.request_violates_schema", BOOL, "API Shield: the request violates the schema."),
    ("cf.api_gateway.fallthrough_detected", BOOL, "API Shield: request matched no saved endpoint."),
    ("cf.schema_validation.learned.violated", BOOL, "The request violates the learned schema."),
    ("cf.schema_validation.uploaded.violated", BOOL, "The request violates an uploaded schema."),
    ("cf.llm.prompt.detected", BOOL, "An LLM prompt was detected."),
    ("cf.llm.prompt.pii_detected", BOOL, "PII was detected in the LLM prompt."),
    ("cf.llm.prompt.unsafe_topic_detected", BOOL, "An unsafe topic was detected in the LLM prompt."),
    ("cf.llm.prompt.pii_categories", _AS, "PII categories found in the LLM prompt."),
    ("cf.llm.prompt.unsafe_topic_categories", _AS, "Unsafe topic categories (S1..S14) of the LLM prompt."),
    ("cf.llm.prompt.injection_score", INT, "Prompt-injection score 1-99 (100 = unscored)."),
    ("cf.llm.prompt.token_count", INT, "Estimated token count of the LLM prompt."),
    ("cf.llm.prompt.custom_topic_categories", Map(INT), "Custom topic -> relevance score 1-99."),
    ("cf.timings.edge_msec", INT, "Edge processing time in ms."),
    ("cf.timings.origin_ttfb_msec", INT, "Origin time to first byte in ms."),
    ("cf.timings.worker_msec", INT, "Worker wall time in ms."),
    ("cf.zone.name", _S, "Name of the zone the request belongs to."),
    # --- response fields ---------------------------------------------------------
    ("http.response.code", INT, "Status code sent to the client."),
    ("http.response.headers", _MAS, "Response headers: lowercased name -> values."),
    ("http.response.headers.names", _AS, "Response header names (original case)."),
    ("http.response.headers.values", _AS, "Response header values aligned with .names."),
    ("http.response.content_type.media_type", _S, "Lowercased response media type without parameters."),
    ("raw.http.response.headers", _MAS, "Immutable original response headers."),
    ("raw.http.response.headers.names", _AS, "Immutable original response header names."),
    ("raw.http.response.headers.values", _AS, "Immutable original response header values."),
    ("cf.response.1xxx_code", INT, "Cloudflare 1xxx error code (0 if none)."),
    ("cf.response.error_type", _S, "Cloudflare error type (\"\" or managed_challenge, waf, 5xx, ...)."),
)

CLOUDFLARE_FIELDS: Final[tuple[tuple[str, Type], ...]] = tuple((n, t) for n, t, _ in _CATALOGUE)

FIELD_DOCS: Final[dict[str, str]] = {n: d for n, _, d in _CATALOGUE}

# Deprecated spellings (Cloudflare's fields reference: "alias of deprecated ip.geoip.*").
FIELD_ALIASES: Final[dict[str, str]] = {
    "ip.geoip.asnum": "ip.src.asnum",
    "ip.geoip.country": "ip.src.country",
    "ip.geoip.continent": "ip.src.continent",
    "ip.geoip.subdivision_1_iso_code": "ip.src.subdivision_1_iso_code",
    "ip.geoip.subdivision_2_iso_code": "ip.src.subdivision_2_iso_code",
    "ip.geoip.is_in_european_union": "ip.src.is_in_european_union",
}
