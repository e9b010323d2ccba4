"""hotline.deps.form_fields: the webhooks' forms, parsed as Starlette parses them."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException, Request
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.deps import MAX_FORM_FIELDS, form_fields


def _request(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> Request:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/twilio/sms",
        "headers": [(b"content-type", content_type.encode())],
        "query_string": b"",
    }
    return Request(scope, receive)


def _ours(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    return asyncio.run(form_fields(_request(body, content_type)))


def _starlettes(body: bytes) -> dict[str, str]:
    async def parse() -> dict[str, str]:
        form = await _request(body).form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    return asyncio.run(parse())


def test_a_twilio_form_gives_its_fields() -> None:
    body = (
        b"MessageSid=SM123&From=%2B8613800000000&Body=%E6%88%91%E4%BB%AC+need+a+loan"
        b"&NumMedia=0&Empty="
    )
    assert _ours(body) == {
        "MessageSid": "SM123",
        "From": "+8613800000000",
        "Body": "我们 need a loan",
        "NumMedia": "0",
        "Empty": "",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"a=1&a=2",  # the last value of a repeated name
        b"a&b=&=c",  # no '=', blank value, blank name
        b"a=1&&&b=2&",  # empty segments
        b"Body=%FF%FE%E6%88",  # %-escapes that are not UTF-8
        "Body=raw café 我".encode(),  # bytes that were never escaped
        b"Body=a%2Bb+c%26d%3De",
        b"a=1;b=2",  # ';' is no separator
        b"%zz=%4",  # broken escapes stay as they are
    ],
)
def test_the_same_fields_as_starlettes_parser(body: bytes) -> None:
    assert _ours(body) == _starlettes(body)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"a", b"B", b"=", b"&", b"+", b"%", b"2", b"F", b"\xe6", b"\x00", b";", b" "]
        ),
        max_size=40,
    )
)
def test_the_same_fields_as_starlettes_parser_for_any_body(chunks: list[bytes]) -> None:
    body = b"".join(chunks)
    assert _ours(body) == _starlettes(body)


def test_too_many_fields_is_a_bad_request() -> None:
    assert len(_ours(b"&".join(b"f%d=1" % n for n in range(MAX_FORM_FIELDS)))) == MAX_FORM_FIELDS
    with pytest.raises(HTTPException) as refused:
        _ours(b"&".join(b"f%d=1" % n for n in range(MAX_FORM_FIELDS + 1)))
    assert refused.value.status_code == 400
    assert str(MAX_FORM_FIELDS) in str(refused.value.detail)


def test_other_encodings_go_through_starlette() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="Body"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="f.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nfile\r\n--XyZ--\r\n"
    )
    # The file is no text field.
    assert _ours(body, "multipart/form-data; boundary=XyZ") == {"Body": "hello"}
    assert _ours(b"a=1", "application/x-www-form-urlencoded; charset=UTF-8") == {"a": "1"}
