"""The trusted HumanEval test runner: the program `augury.evals.code_exec.check_humaneval` runs in the sandbox.

Not imported by the harness: code_exec appends one line, `main(PROMPT, COMPLETION, ENTRY, VERDICT)`, to this
file's text, and the sandbox runs that under `python -I` (standard library only; numpy is imported only when a
value that holds numpy data arrives).

`main` forks the completion into a child process before it has the tests, and the child closes its copy of the
channel to the harness before any completion code runs. Only then does the runner read the tests from the
channel, run them, and write the verdict after `check` returns. The runner is not dumpable, so the child cannot
read its memory or file descriptors through /proc or ptrace.

The tests call the entry point through two pipes, so arguments and return values cross between the processes.
They travel as JSON in a tagged form (`encode` / `decode`): the receiving side rebuilds each value from a fixed
set of types with its own code, so a number, string, container, `collections` mapping, Fraction, Decimal or
numpy scalar or array behaves in the tests as it would in one process, while nothing the completion wrote
(a class with its own `__eq__`, a patched method) reaches the runner. Other subclasses of built-in types arrive
as their base type; anything else makes the call raise TypeError.
"""

import builtins
import collections
import ctypes
import decimal
import fractions
import json
import os
import re
import struct
import sys

PR_SET_DUMPABLE = 4
BIG_INT = 2**63  # larger ints travel as hex text: JSON readers refuse very long decimal numbers
NUMPY_KINDS = "biufcSU"  # bool, ints, floats, complex, bytes and str: plain bytes with no pointers in them
NUMPY_DTYPE = re.compile(r"[<>|=][biufcSU][0-9]{1,6}")
FACTORIES = {None: None, "int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict,
             "set": set, "tuple": tuple}
# Subclasses of built-in types not named below arrive as these, the value without its class's methods.
BASES = ((int, int.__index__), (float, float.__float__), (str, str.__str__), (complex, complex),
         (bytes, bytes), (bytearray, bytearray), (tuple, tuple), (list, list), (dict, dict),
         (frozenset, frozenset), (set, set))


def encode(value):
    """`value` as JSON-ready data: None, bools, small ints, floats, strings, and lists tagged by their first item."""
    kind = type(value)
    if value is None or kind in (bool, float, str):
        return value
    if kind is int:
        return value if -BIG_INT < value < BIG_INT else ["int", hex(value)]
    if kind in (list, tuple, set, frozenset):
        return [kind.__name__, *map(encode, value)]
    if kind in (dict, collections.Counter, collections.OrderedDict):
        return [kind.__name__, *_encode_items(value)]
    if kind in (bytes, bytearray):
        return [kind.__name__, value.hex()]
    if kind is complex:
        return ["complex", value.real, value.imag]
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.generic, numpy.ndarray)):
        return _encode_numpy(numpy, value)
    if kind is collections.defaultdict:
        factory = next((name for name, f in FACTORIES.items() if f is value.default_factory), None)
        return ["defaultdict", factory, *_encode_items(value)]
    if kind is collections.deque:
        return ["deque", value.maxlen, *map(encode, value)]
    if kind is fractions.Fraction:
        return ["Fraction", encode(value.numerator), encode(value.denominator)]
    if kind is decimal.Decimal:
        return ["Decimal", str(value)]
    if kind is range:
        return ["range", value.start, value.stop, value.step]
    for base, plain in BASES:
        if isinstance(value, base):
            return encode(plain(value))
    raise TypeError(f"a {kind.__module__}.{kind.__qualname__} cannot be passed between the tests and the "
                    "completion (augury's HumanEval runner)")


def _encode_items(mapping) -> list:
    return [[encode(key), encode(item)] for key, item in mapping.items()]


def _encode_numpy(numpy, value) -> list:
    array = numpy.asarray(value)  # a scalar becomes a 0-d array, an ndarray subclass its plain data
    if array.dtype.kind == "O":
        return ["ndarray-objects", list(array.shape), *map(encode, array.ravel().tolist())]
    if array.dtype.kind not in NUMPY_KINDS or array.dtype.fields is not None:
        raise TypeError(f"numpy data of dtype {array.dtype} cannot be passed between the tests and the completion")
    data = numpy.ascontiguousarray(array).tobytes().hex()
    if isinstance(value, numpy.generic):
        return ["numpy-scalar", array.dtype.str, data]
    return ["ndarray", array.dtype.str, list(array.shape), data]


def decode(data):
    """The value `encode` described, rebuilt from the fixed set of types; malformed data raises ValueError."""
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is not list or not data or type(data[0]) is not str or data[0] not in BUILDERS:
        raise ValueError("malformed value from the other side of the HumanEval runner")
    return BUILDERS[data[0]](*data[1:])


def _items(pairs) -> list:
    if any(type(pair) is not list or len(pair) != 2 for pair in pairs):
        raise ValueError("malformed mapping from the other side of the HumanEval runner")
    return [(decode(key), decode(item)) for key, item in pairs]


def _text(data) -> str:
    if type(data) is not str:
        raise ValueError("malformed value from the other side of the HumanEval runner")
    return data


def _shape(shape) -> list:
    if type(shape) is not list or any(type(n) is not int or n < 0 for n in shape):
        raise ValueError("malformed numpy shape from the other side of the HumanEval runner")
    return shape


def _ndarray(dtype, shape, data):
    import numpy

    if not NUMPY_DTYPE.fullmatch(_text(dtype)):
        raise ValueError(f"numpy dtype {dtype!r} is not one the HumanEval runner rebuilds")
    raw = bytes.fromhex(_text(data))
    if dtype[1] == "b":  # a bool is one byte, 0 or 1; never keep other byte values
        array = numpy.frombuffer(raw, numpy.uint8) != 0
    else:
        array = numpy.frombuffer(raw, numpy.dtype(dtype)).copy()
    return array.reshape(_shape(shape))


def _ndarray_objects(shape, *items):
    import numpy

    array = numpy.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = decode(item)
    return array.reshape(_shape(shape))


def _fraction(numerator, denominator):
    numerator, denominator = decode(numerator), decode(denominator)
    if type(numerator) is not int or type(denominator) is not int:
        raise ValueError("malformed Fraction from the other side of the HumanEval runner")
    return fractions.Fraction(numerator, denominator)


def _range(start, stop, step):
    if any(type(n) is not int for n in (start, stop, step)):
        raise ValueError("malformed range from the other side of the HumanEval runner")
    return range(start, stop, step)


BUILDERS = {
    "list": lambda *items: [decode(item) for item in items],
    "tuple": lambda *items: tuple(decode(item) for item in items),
    "set": lambda *items: {decode(item) for item in items},
    "frozenset": lambda *items: frozenset(decode(item) for item in items),
    "dict": lambda *pairs: dict(_items(pairs)),
    "Counter": lambda *pairs: collections.Counter(dict(_items(pairs))),
    "OrderedDict": lambda *pairs: collections.OrderedDict(_items(pairs)),
    "defaultdict": lambda factory, *pairs: collections.defaultdict(FACTORIES[factory], _items(pairs)),
    "deque": lambda maxlen, *items: collections.deque((decode(item) for item in items),
                                                      maxlen if type(maxlen) is int else None),
    "int": lambda digits: int(_text(digits), 16),
    "bytes": lambda digits: bytes.fromhex(_text(digits)),
    "bytearray": lambda digits: bytearray.fromhex(_text(digits)),
    "complex": lambda real, imag: complex(float(decode(real)), float(decode(imag))),
    "Fraction": _fraction,
    "Decimal": lambda digits: decimal.Decimal(_text(digits)),
    "range": _range,
    "numpy-scalar": lambda dtype, data: _ndarray(dtype, [], data)[()],
    "ndarray": _ndarray,
    "ndarray-objects": _ndarray_objects,
}


def pack(value) -> bytes:
    return json.dumps(encode(value)).encode("utf-8")


def send(fd: int, data: bytes) -> None:
    data = struct.pack("<Q", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def recv(fd: int):
    """The next value on `fd`, or None when the writer has gone."""
    head = _read(fd, 8)
    data = None if head is None else _read(fd, struct.unpack("<Q", head)[0])
    return None if data is None else decode(json.loads(data))


def _read(fd: int, n: int):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(source: str, entry: str, calls: int, replies: int) -> None:
    """The completion's process: load the completion, then answer calls until the runner hangs up."""
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(source, "completion.py", "exec"), namespace)
        fn = namespace[entry]
    except BaseException as exc:
        send(replies, pack(("error", type(exc).__name__, str(exc)[:2000])))
        os._exit(1)
    send(replies, pack(("ready",)))
    while True:
        call = recv(calls)
        if call is None:
            os._exit(0)
        try:
            reply = pack(("ok", fn(*call[0], **call[1])))
        except BaseException as exc:
            reply = pack(("raised", type(exc).__name__, str(exc)[:2000]))
        send(replies, reply)


class CandidateFailed(Exception):
    pass


def prompt_code(prompt: str):
    """The prompt's code for the tests' namespace (its imports and helpers). A prompt that ends at the entry
    point's signature, with no docstring, does not compile alone: its trailing lines are dropped until it does."""
    lines = prompt.splitlines(keepends=True)
    while True:
        try:
            return compile("".join(lines), "prompt.py", "exec")
        except SyntaxError:
            if not lines:
                raise
            lines.pop()


def main(prompt: str, completion: str, entry: str, verdict: bytes) -> None:
    channel = int(os.environ.pop("AUGURY_CHANNEL_FD"))
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # same-uid processes cannot read our memory or fds
    calls_r, calls_w = os.pipe()
    replies_r, replies_w = os.pipe()
    if os.fork() == 0:  # the completion's process: it never holds the tests or the channel
        os.close(channel)
        os.close(calls_w)
        os.close(replies_r)
        serve(prompt + completion, entry, calls_r, replies_w)
    os.close(calls_r)
    os.close(replies_w)

    def expect_reply() -> tuple:
        reply = recv(replies_r)
        if reply is None:
            raise CandidateFailed("the completion's process ended before answering")
        if type(reply) is not tuple or not reply:
            raise CandidateFailed("malformed reply from the completion's process")
        return reply

    first = expect_reply()
    if first[0] != "ready":
        raise CandidateFailed(f"the completion did not load: {': '.join(map(str, first[1:]))}")

    def candidate(*args, **kwargs):
        send(calls_w, pack((args, kwargs)))
        reply = expect_reply()
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raised" and len(reply) == 3:
            kind = getattr(builtins, _text(reply[1]), None)
            # A StopIteration leaving the candidate would end the tests' iterator (all(map(...)) is then True);
            # it fails the call instead, as a generator's becomes RuntimeError (PEP 479).
            if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, StopIteration):
                raise kind(reply[2])
            raise CandidateFailed(f"{reply[1]}: {reply[2]}")
        raise CandidateFailed(f"unexpected reply {reply[0]!r}")

    tests = b""
    while True:
        chunk = os.read(channel, 65536)
        if not chunk:
            break
        tests += chunk
    namespace = {"__name__": "__augury_tests__"}
    exec(prompt_code(prompt), namespace)
    namespace[entry] = candidate  # tests may call the entry point by its own name
    exec(compile(tests.decode("utf-8"), "tests.py", "exec"), namespace)
    namespace["check"](candidate)
    os.write(channel, verdict)
    os._exit(0)
