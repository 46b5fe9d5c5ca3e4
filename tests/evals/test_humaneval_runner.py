"""The HumanEval runner's value transport: what crosses between the completion's process and the tests' process.

Values are rebuilt on the receiving side from a fixed set of types, so they keep their type and behaviour,
while anything the completion's code defines (its own classes, methods, patches) is left behind.
"""

from __future__ import annotations

import collections
import decimal
import fractions
import json

import pytest

from augury.evals._humaneval_runner import decode, encode

np = pytest.importorskip("numpy")


def across(value):
    """`value` after a trip through the pipe between the processes."""
    return decode(json.loads(json.dumps(encode(value))))


def same(a, b) -> bool:
    """Equal, of the same type all the way down (and of the same dtype and shape for numpy data)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    if isinstance(a, (list, tuple, collections.deque)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b or (a != a and b != b)  # NaN


ROUND_TRIPS = [
    None, True, 0, -7, 2**63, -(2**200), 1.5, float("inf"), float("nan"), "", "snowman \u2603 \udc80",
    b"\x00\xff", bytearray(b"ab"), 3 - 4j, [1, [2, (3,)]], (), {1, 2}, frozenset({"a"}), {(1, 2): {"x": [None]}},
    collections.Counter("abbc"), collections.OrderedDict(b=1, a=2), collections.deque([1, 2], maxlen=3),
    fractions.Fraction(-3, 7), decimal.Decimal("0.1"), range(1, 10, 3),
    np.float64(0.1), np.float32(0.5), np.int64(-3), np.uint8(200), np.bool_(True), np.complex128(1j),
    np.str_("ab"), np.bytes_(b"x"), np.arange(6).reshape(2, 3), np.array([True, False]),
    np.array(["a", "bcd"]), np.array([[1.5]], dtype=">f4"), np.array([1, "a", None], dtype=object),
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_values_cross_with_their_type(value):
    assert same(across(value), value)


def test_a_defaultdict_keeps_a_builtin_factory():
    value = across(collections.defaultdict(list, a=[1]))
    assert type(value) is collections.defaultdict and value["missing"] == [] and value["a"] == [1]


def test_subclasses_cross_as_their_base_type_without_their_methods():
    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Loud(float):
        pass

    class Always(np.float64):
        def __eq__(self, other):
            return True

    values = across([Yes(3), Loud(2.5), Always(1.0), collections.namedtuple("P", "a b")(1, 2)])
    assert same(values, [3, 2.5, np.float64(1.0), (1, 2)])


@pytest.mark.parametrize("value", [object(), lambda: 1, iter([1]), {}.keys(), np.array([(1, 2.0)], dtype="i4,f8")],
                         ids=["object", "function", "iterator", "dict-view", "structured-array"])
def test_other_objects_cannot_cross(value):
    with pytest.raises(TypeError, match="cannot be passed"):
        encode(value)


@pytest.mark.parametrize("data", [
    {"__class__": "os.system"},                       # a JSON object is no value of ours
    ["os.system", "id"],                              # an unknown tag
    [],
    ["ndarray", "|O8", [1], "00" * 8],                # object pointers from raw bytes
    ["ndarray", "|V8", [1], "00" * 8],
    ["ndarray", "<f8,<i4", [1], "00" * 12],
    ["ndarray", "<f8", [2], "00" * 8],                # fewer bytes than the shape needs
    ["ndarray", "<f8", ["1"], "00" * 8],
    ["numpy-scalar", "<M8", "00" * 8],
    ["defaultdict", "eval"],
    ["dict", ["a", 1, 2]],
    ["Fraction", 1.5, 2],
    ["int", 12],
])
def test_malformed_data_is_refused(data):
    with pytest.raises((ValueError, TypeError, KeyError)):
        decode(data)


def test_bool_data_holds_only_zero_and_one():
    value = decode(["ndarray", "|b1", [3], "020001"])
    assert value.tolist() == [True, False, True] and value.view(np.uint8).tolist() == [1, 0, 1]
