"""Examples of Cloudflare's fields reference (https://developers.cloudflare.com/ruleset-engine/rules-language/fields/reference/)
for fields computed from a request (the case files give field
values directly; these go request → ``request_fields`` → filter).

Each test quotes (or closely paraphrases) the reference row it transcribes.
"""

from __future__ import annotations

import pytest

from edgerules.enforcement.request_fields import RequestInfo, request_fields
from edgerules.lang.engine import compile as compile_filter


def _run(expr: str, info: RequestInfo) -> bool:
    f = compile_filter(expr)
    return f.matches(request_fields(f.fields, info))


# "http.request.uri.path.extension | lowercased text after the last . of the
# last path segment; "" if none or if the segment starts with its only dot (/foo→"",
# /foo.MP3→"mp3", /.mp3→"", /.foo.mp3→"mp3", /foo.tar.bz2→"bz2", /foo.→"")"
@pytest.mark.parametrize(
    ("path", "extension"),
    [
        ("/foo", ""),
        ("/foo.MP3", "mp3"),
        ("/.mp3", ""),
        ("/.foo.mp3", "mp3"),
        ("/foo.tar.bz2", "bz2"),
        ("/foo.", ""),
        ("/articles/index.html", "html"),
        ("/dir.d/file", ""),  # only the last path segment counts
        ("/a/b.PNG?x=1.jpg", "png"),  # the query is not part of the path
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_f3_path_extension(path: str, extension: str) -> None:
    info = RequestInfo(method=b"GET", target=path.encode())
    fields = request_fields(["http.request.uri.path.extension", "raw.http.request.uri.path.extension"], info)
    assert fields["http.request.uri.path.extension"] == extension.encode()
    assert fields["raw.http.request.uri.path.extension"] == extension.encode()
    assert _run(f'http.request.uri.path.extension eq "{extension}"', info)


# Fields reference and values page: "For http.request.headers the keys are the lowercased
# header names, so http.request.headers["X-Foo"] can never match; write ["x-foo"]";
# ".names | header names in original case"
def test_f4_header_keys_lowercased_names_original_case() -> None:
    info = RequestInfo(method=b"GET", target=b"/", headers=[(b"Host", b"a.com"), (b"X-Foo", b"bar")])
    assert not _run('http.request.headers["X-Foo"][0] eq "bar"', info)
    assert not _run('any(http.request.headers["X-Foo"][*] eq "bar")', info)
    assert _run('http.request.headers["x-foo"][0] eq "bar"', info)
    assert _run('any(http.request.headers.names[*] eq "X-Foo")', info)
    assert not _run('any(http.request.headers.names[*] eq "x-foo")', info)
    assert _run('any(lower(http.request.headers.names[*])[*] eq "x-foo")', info)
    assert _run('http.request.headers.values[1] eq "bar"', info)


# "http.request.headers | repeated headers in order; values unmodified"
def test_f4_repeated_headers_in_order() -> None:
    info = RequestInfo(
        method=b"GET", target=b"/", headers=[(b"Accept", b"text/html"), (b"accept", b"application/json")]
    )
    assert _run('http.request.headers["accept"][0] eq "text/html"', info)
    assert _run('http.request.headers["accept"][1] eq "application/json"', info)
    assert _run('len(http.request.headers["accept"]) eq 2', info)


# full_uri "scheme + host + path + query, no #fragment"; uri "path + ? + query";
# path "path only"; query "query string without ?"; example
# "https://www.example.org/articles/index?section=539061&expand=comments"
def test_f3_uri_fields_doc_example() -> None:
    info = RequestInfo(
        method=b"GET",
        target=b"/articles/index?section=539061&expand=comments",
        headers=[(b"Host", b"www.example.org")],
    )
    assert _run(
        'http.request.full_uri eq "https://www.example.org/articles/index?section=539061&expand=comments"'
        ' and http.request.uri eq "/articles/index?section=539061&expand=comments"'
        ' and http.request.uri.path eq "/articles/index"'
        ' and http.request.uri.query eq "section=539061&expand=comments"'
        ' and http.host eq "www.example.org"',
        info,
    )


# "http.request.uri.args | query arguments; repeated names keep request order;
# no decoding; case preserved | {"search": ["red+apples"]}"
def test_f3_args_doc_example() -> None:
    info = RequestInfo(method=b"GET", target=b"/s?search=red+apples&Search=x&search=%41")
    assert _run('http.request.uri.args["search"][0] eq "red+apples"', info)
    assert _run('http.request.uri.args["search"][1] eq "%41"', info)
    assert _run('http.request.uri.args["Search"][0] eq "x"', info)
    assert _run(
        'join(http.request.uri.args.names, ",") eq "search,Search,search"'
        ' and join(http.request.uri.args.values, ",") eq "red+apples,x,%41"',
        info,
    )


# "http.request.method | method, uppercase | GET"
def test_f3_method_uppercase() -> None:
    info = RequestInfo(method=b"GET", target=b"/")
    assert _run('http.request.method eq "GET"', info)
