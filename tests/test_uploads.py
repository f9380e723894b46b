"""The multipart/form-data parser the service uses instead of python-multipart."""

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import BusyError, MalformedRequestError, TooLargeError, http_status
from app.uploads import Part, parse_multipart


def encoded(files: list[tuple[str, tuple[str, bytes, str]]], data: dict | None = None):
    """A body and Content-Type as a real client (httpx) writes them."""
    request = httpx.Request("POST", "http://test/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_parse_multipart_reads_what_httpx_writes() -> None:
    body, content_type = encoded(
        [("file", ("d.png", b"\x89PNG\r\n--x\r\n", "image/png")), ("other", ("o", b"", "a/b"))],
        data={"note": "hello"},
    )
    parts = parse_multipart(body, content_type)
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("note", None, b"hello"),
        ("file", "d.png", b"\x89PNG\r\n--x\r\n"),
        ("other", "o", b""),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["file", "files", "x"]), st.binary(max_size=300)),
        min_size=1,
        max_size=5,
    )
)
def test_parse_multipart_returns_every_field_byte_for_byte(fields: list[tuple[str, bytes]]) -> None:
    body, content_type = encoded(
        [
            (name, (f"f{i}.bin", data, "application/octet-stream"))
            for i, (name, data) in enumerate(fields)
        ]
    )
    parts = parse_multipart(body, content_type)
    assert [(p.name, p.data) for p in parts] == fields


def test_parse_multipart_takes_a_quoted_boundary_a_preamble_and_an_epilogue() -> None:
    body = (
        b"preamble\r\n--a b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="q\\"x.png"\r\n\r\n'
        b"DATA\r\n--a b--\r\nepilogue"
    )
    parts = parse_multipart(body, 'multipart/form-data; BOUNDARY="a b"')
    assert parts == [Part("file", 'q"x.png', b"DATA")]


def test_parse_multipart_takes_unquoted_parameters_and_any_header_case() -> None:
    headers = b"content-type: image/png\r\nCONTENT-DISPOSITION: Form-Data; name=file"
    body = b"--b\r\n" + headers + b"\r\n\r\nX\r\n--b--"
    assert parse_multipart(body, "multipart/form-data;boundary=b") == [Part("file", None, b"X")]


B = "multipart/form-data; boundary=b"
DISPOSITION = b"Content-Disposition: form-data; name=f"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"--b\r\n\r\nx\r\n--b--", "multipart/form-data", "no boundary parameter"),
        (b"no boundary here", B, "no multipart boundary"),
        (b"--b\r\n" + DISPOSITION + b"\r\n\r\nx", B, "not closed by a boundary"),
        (b"--b\r\n" + DISPOSITION, B, "headers are not terminated"),
        (b"--bX\r\n\r\nx\r\n--b--", B, "not followed by a line break"),
        (b"--b\r\nContent-Type: image/png\r\n\r\nx\r\n--b--", B, "no Content-Disposition"),
        (b"--b\r\nContent-Disposition: attachment; name=f\r\n\r\nx\r\n--b--", B, "with a name"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", B, "with a name"),
    ],
)
def test_parse_multipart_rejects_malformed_bodies(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(MalformedRequestError, match=reason) as caught:
        parse_multipart(body, content_type)
    assert http_status(caught.value) == 422


def test_parse_multipart_rejects_a_truncated_upload() -> None:
    body, content_type = encoded([("file", ("d.png", b"x" * 1000, "image/png"))])
    with pytest.raises(MalformedRequestError, match="truncated"):
        parse_multipart(body[:500], content_type)


def test_parse_multipart_caps_each_parts_headers_and_the_part_count() -> None:
    long_header = [("file", ("x" * 9000, b"data", "image/png"))]
    with pytest.raises(TooLargeError, match="headers exceed 8192 bytes"):
        parse_multipart(*encoded(long_header))
    many = [("files", (f"{i}.png", b"d", "image/png")) for i in range(5)]
    assert len(parse_multipart(*encoded(many), max_parts=5)) == 5
    with pytest.raises(TooLargeError, match="more than 4 parts"):
        parse_multipart(*encoded(many), max_parts=4)


def test_body_budget_refuses_a_body_past_what_all_requests_hold_together() -> None:
    import asyncio

    from app.uploads import BodyBudget

    holding = asyncio.Event()
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/hold":
            holding.set()
            await release.wait()

    budget = BodyBudget(app, limit=1000)

    def receiver(size: int):
        messages = [{"type": "http.request", "body": b"x" * size, "more_body": False}]

        async def receive():
            return messages.pop(0)

        return receive

    async def scenario() -> None:
        held = asyncio.create_task(budget({"type": "http", "path": "/hold"}, receiver(800), None))
        await holding.wait()
        assert budget.held == 800
        with pytest.raises(BusyError):
            await budget({"type": "http", "path": "/"}, receiver(300), None)
        await budget({"type": "http", "path": "/"}, receiver(200), None)  # still fits
        release.set()
        await held
        assert budget.held == 0

    asyncio.run(scenario())
