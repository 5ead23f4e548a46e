"""leanjson: the start-up path's JSON, byte-for-byte what the standard ``json`` module does."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from dockyard import leanjson

CORPUS = [
    None, True, False, 0, -1, 2**63, -(2**70), 1.5, -0.0, 1e100, 3.141592653589793, 1e-7, 123456789.0,
    "", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncr\rbell\x07nul\x00",
    "\x1f\x7f", "unicode é ü 中文", "emoji 😀 (astral)", "\u2028\u2029", "lone surrogate \ud800",
    [], {}, [[]], [{}], {"": ""}, [1, "a", None, True, 2.5],
    {"a": 1, "b": [1, 2, {"c": None}], "d": {"e": {"f": []}}},
    {"ociVersion": "1.2.0", "process": {"args": ["sh", "-c", "echo \"hi\""], "env": ["A=1"],
                                        "user": {"uid": 0, "gid": 0}, "terminal": False},
     "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": []}],
     "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]},
               "sysctl": {}, "namespaces": [{"type": "pid"}, {"type": "mount"}]}},
    {"z": 1, "a": 2, "m": 3},  # key order is kept, not sorted
    {"key with \"quotes\"": "v", "ключ": "значение", "\n": "\t"},
    [[[[[[["deep"]]]]]]],
    list(range(50)),
    {"floats": [0.1, 0.2, 0.30000000000000004, 1e16, 1.7976931348623157e308, 5e-324]},
]


@pytest.mark.parametrize("obj", CORPUS, ids=range(len(CORPUS)))
def test_compact_dumps_equals_json(obj):
    assert leanjson.dumps(obj) == json.dumps(obj)


@pytest.mark.parametrize("indent", [2, 4, "\t", 0, "  "])
@pytest.mark.parametrize("obj", CORPUS, ids=range(len(CORPUS)))
def test_indented_dumps_equals_json(obj, indent):
    assert leanjson.dumps(obj, indent=indent) == json.dumps(obj, indent=indent)


def test_tuples_dump_as_lists():
    value = {"t": (1, (2, 3)), "e": ()}
    assert leanjson.dumps(value) == json.dumps(value)
    assert leanjson.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_non_string_keys_compact():
    value = {1: "a", 2.5: "b", None: "c", True: "d"}
    assert leanjson.dumps(value) == json.dumps(value)


def test_non_string_keys_indented():
    value = {None: "c", True: "d"}
    assert leanjson.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_numeric_keys_indented():
    value = {1: "a", 2.5: "b"}
    assert leanjson.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_special_floats_like_json():
    for v in (float("nan"), float("inf"), float("-inf")):
        assert leanjson.dumps([v]) == json.dumps([v])


def test_unserializable_is_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        leanjson.dumps({"s": {1, 2}})
    with pytest.raises(TypeError):
        leanjson.dumps(object(), indent=2)


@pytest.mark.parametrize("obj", CORPUS, ids=range(len(CORPUS)))
def test_loads_round_trip_equals_json(obj):
    for text in (json.dumps(obj), json.dumps(obj, indent=2), json.dumps(obj, ensure_ascii=False)):
        got, want = leanjson.loads(text), json.loads(text)
        assert got == want or (isinstance(want, float) and math.isnan(want))
        assert type(got) is type(want)


@pytest.mark.parametrize("text", [
    ' {"a": 1} ', '\n\t{"a": [1, 2]}\r\n', "  3", "[] ", '"x"\n', "null", " true", "-0", "1E+2",
    '{"a":1,"a":2}', '"\\u00e9\\ud83d\\ude00"', '[1.0, 2e-3, -0.5]', "NaN", "[-Infinity, Infinity]",
])
def test_loads_equals_json(text):
    got, want = leanjson.loads(text), json.loads(text)
    assert repr(got) == repr(want)
    assert repr(leanjson.loads(text.encode())) == repr(want)  # bytes are UTF-8


def test_loads_bytes_and_bytearray_utf8():
    raw = '{"k": "é中😀"}'.encode()
    assert leanjson.loads(raw) == json.loads(raw) == {"k": "é中😀"}
    assert leanjson.loads(bytearray(raw)) == {"k": "é中😀"}


def test_loads_object_keeps_key_order():
    assert list(leanjson.loads('{"z": 1, "a": 2, "m": 3}')) == ["z", "a", "m"]


@pytest.mark.parametrize("text", [
    "", " ", "\n", "{", "[1, 2", '{"a": }', '{"a" 1}', "[1,]", '{"a": 1,}', "tru", "nul", '"abc',
    '{"a": 1} x', "[1] [2]", "1 2", "{}{}", "'single'", "01", "+1", ".5", "1.", "[1, 2]]",
    "\ufeff{}", '"tab\there"', '"\\x41"', "undefined", "{a: 1}",
])
def test_malformed_input_raises_value_error(text):
    with pytest.raises(ValueError):
        json.loads(text)  # the oracle agrees it is malformed
    with pytest.raises(ValueError):
        leanjson.loads(text)
    with pytest.raises(ValueError):
        leanjson.loads(text.encode())


def test_errors_say_where():
    with pytest.raises(leanjson.JSONDecodeError, match="Extra data at char 9"):
        leanjson.loads('{"a": 1} x')
    with pytest.raises(leanjson.JSONDecodeError, match="BOM"):
        leanjson.loads("\ufeff{}")
    with pytest.raises(leanjson.JSONDecodeError, match="Expecting value"):
        leanjson.loads("   ")


def test_invalid_utf8_bytes_is_value_error():
    with pytest.raises(ValueError):
        leanjson.loads(b'{"a": "\xff"}')


def test_large_document_round_trip():
    doc = {f"key{i}": [i, str(i) * 3, {"n": i / 7}] for i in range(2000)}
    text = leanjson.dumps(doc, indent=2)
    assert text == json.dumps(doc, indent=2)
    assert leanjson.loads(text) == doc


def test_runtime_cli_import_stays_lean():
    """Importing dockyard.runtime.cli must not pull in re, socket or json (start-up budget)."""
    code = ("import sys, dockyard.runtime.cli; "
            "print('re' in sys.modules, 'socket' in sys.modules, 'json' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"], out.stdout + out.stderr


def test_leanjson_import_stays_lean():
    code = ("import sys, dockyard.leanjson as j; j.loads(j.dumps({'a': [1]}, indent=2)); "
            "print('re' in sys.modules, 'json' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


@pytest.mark.parametrize("text", ["", "sleep 1000", 'sh -c "echo \\"hi\\""', "tab\there\n", "é中😀",
                                  "\x00\x1f\x7f", "back\\slash"])
def test_quote_is_json_dumps_without_ascii_escapes(text):
    assert leanjson.quote(text) == json.dumps(text, ensure_ascii=False)
