"""The tus headers' parsers (uploads/tus.py): what a client may send, read exactly; anything else a 4xx.

Property tests: every well-formed value round-trips, and no input whatever makes a parser raise anything
but its TusError (a 500 would be a bug).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.problems import problem
from uploads import tus

KEY_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=",")
KEYS = st.text(KEY_CHARS, min_size=1, max_size=20)
# Text a client may send: no lone surrogates (not UTF-8) and no NUL (refused: the row's JSON cannot hold it).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


@given(st.integers(min_value=0, max_value=tus.MAX_INTEGER))
def test_integers_round_trip(number):
    assert tus.parse_integer(str(number), header="Upload-Length") == number


@given(st.text(max_size=30))
def test_integer_parser_accepts_ascii_digits_only(value):
    ascii_digits = 1 <= len(value) <= 19 and all(c in "0123456789" for c in value)
    if ascii_digits and int(value) <= tus.MAX_INTEGER:
        assert tus.parse_integer(value, header="Upload-Offset") == int(value)
    else:
        with pytest.raises(tus.TusError) as raised:
            tus.parse_integer(value, header="Upload-Offset")
        assert raised.value.status == 400


@pytest.mark.parametrize(
    "value", ["²", "١٢", "+5", "-1", " 5", "5 ", "1_000", "0x10", "", "9" * 20, str(2**63)]
)
def test_integers_that_int_or_isdigit_would_take_are_refused(value):
    with pytest.raises(tus.TusError):
        tus.parse_integer(value, header="Upload-Length")


def test_absent_integers_are_none_but_offset_is_required():
    assert tus.parse_upload_length(None) is None
    with pytest.raises(tus.TusError):
        tus.parse_upload_offset(None)


@given(st.dictionaries(KEYS, TEXT, max_size=6))
def test_metadata_round_trips(metadata):
    assert tus.parse_metadata(tus.format_metadata(metadata)) == metadata


@given(st.text(max_size=200))
def test_metadata_parser_raises_only_its_own_error(value):
    try:
        parsed = tus.parse_metadata(value)
    except tus.TusError as exc:
        assert exc.status == 400
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        f"filename {b64('a.png')},filename {b64('b.png')}",  # a duplicate key
        "filename not*base64",
        "filename YQ",  # unpadded
        "filename YQ==\n",
        f"fïlename {b64('a.png')}",  # a key that is not ASCII
        f"file name {b64('a.png')}",  # three parts
        f",filename {b64('a.png')}",  # an empty pair
        "filename " + base64.b64encode(b"\xff\xfe").decode(),  # not UTF-8
        "filename " + "QUFB" * 2000,  # too long
        "relativePath " + base64.b64encode(b"a\x00b").decode(),  # NUL, which PostgreSQL's jsonb refuses
        "filetype AA==",
    ],
)
def test_malformed_metadata_is_a_400(header):
    with pytest.raises(tus.TusError) as raised:
        tus.parse_metadata(header)
    assert raised.value.status == 400
    assert raised.value.field == "Upload-Metadata"


def test_metadata_keys_without_values_are_empty_text():
    assert tus.parse_metadata(f"is_confidential,filename {b64('ü.png')}") == {
        "is_confidential": "",
        "filename": "ü.png",
    }


@given(st.sampled_from(tus.CHECKSUM_ALGORITHMS), st.binary(max_size=64))
def test_checksums_round_trip(algorithm, body):
    digest = hashlib.new(algorithm, body).digest()
    parsed = tus.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed == tus.Checksum(algorithm=algorithm, digest=digest)
    assert parsed.new().name == algorithm


@given(st.text(max_size=80))
def test_checksum_parser_raises_only_its_own_error(value):
    try:
        tus.parse_checksum(value)
    except tus.TusError as exc:
        assert exc.status == 400


@pytest.mark.parametrize(
    "header",
    [
        "md5 " + base64.b64encode(hashlib.md5(b"").digest()).decode(),  # noqa: S324 - an algorithm we refuse
        "crc32 AAAAAA==",
        "sha1 " + base64.b64encode(b"short").decode(),  # not a sha1's length
        "sha1",
        "sha256 !!!!",
    ],
)
def test_unknown_or_malformed_checksums_are_a_400(header):
    with pytest.raises(tus.TusError) as raised:
        tus.parse_checksum(header)
    assert raised.value.status == 400


def test_defer_length_is_one_or_absent():
    assert tus.parse_defer_length("1") is True
    assert tus.parse_defer_length(None) is False
    for value in ("0", "true", " 1", "01"):
        with pytest.raises(tus.TusError):
            tus.parse_defer_length(value)


@pytest.mark.parametrize("value", [None, "", "0.2.2", "1.0.0 ", "1.0"])
def test_other_tus_versions_are_a_412(value):
    if value == "1.0.0 ":
        tus.check_resumable(value)  # surrounding whitespace is not part of a header's value
        return
    with pytest.raises(tus.TusVersionUnsupported) as raised:
        tus.check_resumable(value)
    assert raised.value.status == 412


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_expires_is_an_http_date_to_the_second(moment):
    text = tus.format_expires(moment)
    assert text.endswith(" GMT")
    assert tus.parse_expires(text) == moment.replace(microsecond=0)


def test_a_checksum_mismatch_is_a_problem_like_any_other():
    body = problem(460, "The chunk's sha1 is not the one declared.")
    assert body["status"] == 460
    assert body["title"] == "Checksum Mismatch"
    assert body["code"] == "checksum_mismatch"


def test_discovery_names_every_extension_and_algorithm():
    headers = tus.discovery_headers(max_size=1234)
    assert headers["Tus-Resumable"] == "1.0.0"
    assert headers["Tus-Version"] == "1.0.0"
    assert headers["Tus-Max-Size"] == "1234"
    assert set(headers["Tus-Extension"].split(",")) >= {
        "creation",
        "creation-with-upload",
        "expiration",
        "termination",
        "checksum",
    }
    assert headers["Tus-Checksum-Algorithm"] == "sha1,sha256"
