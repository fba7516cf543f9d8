"""A JSON list of rows of numbers read straight into a float64 matrix, by one compiled pass.

``orjson.loads`` of 1,000 EMBER vectors makes 2.4 M Python floats, and numpy then reads them one
object at a time (~25-30 % more on top of the parse); here the text is read once into the array,
with no Python object per number. Only the plainest form is taken: ``[`` rows ``]``, each row ``[``
``width`` JSON numbers ``]``, JSON whitespace between tokens. Anything else (another width, a
ragged row, ``true``, ``null``, a string, a nested list, an object, a number JSON does not allow
such as ``01``, ``1.`` or ``.5``, ``-0`` (an integer 0 to Python's ``json`` but ``-0.0`` as a
float), more than 19 significant digits, a number too large for a double) gives None, and the caller
reads the body its usual way; so this never accepts a body the general path refuses, and never
gives a value it would not.

Numbers are correctly rounded, as Python's ``float`` (and so ``json``) and orjson round them:
Clinger's exact fast path where the digits fit 53 bits and the power of ten is exact (|e| <= 22),
else the Eisel-Lemire algorithm (Lemire, "Number Parsing at a Gigabyte per Second", 2021, as in
fast_float: a 128-bit product with a truncated power of five, which is always sufficient, Mushtak and
Lemire 2023), with subnormals and round-half-even. ``tests/test_json_matrix.py`` checks it against
``float`` on random and edge-case numbers.

Compiled (numba) the first time it is imported (~1-3 s once a process), which the service does on
its first JSON-vectors request, never at start-up.

>>> read_number_rows(b"[[1, 2.5], [3e2, -4E-1]]", 2).tolist()
[[1.0, 2.5], [300.0, -0.4]]
>>> read_number_rows(b"[[1, 2], [3]]", 2) is None
True

:func:`read_number_list` reads one flat list the same way, where a caller has found it inside a
bigger document (the V2 JSON tensor's ``data``: ``vigil.service.v2``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vigil.kernel_cache import cached

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_PRECISION_MASK = _U64(0xFFFFFFFFFFFFFFFF >> 55)  # 52 explicit mantissa bits + 3
_MAX_FAST_MANTISSA = _U64(1 << 53)
_IMPLICIT_BIT = _U64(1 << 52)
_SMALLEST_POWER, _LARGEST_POWER = -342, 308
_EXACT_POWERS = np.array([10.0**k for k in range(23)], dtype=np.float64)  # 1e0..1e22, each exact


def _powers_of_five() -> np.ndarray:
    """5**q for q in -342..308 as 128-bit mantissas (high, low words), as fast_float's table."""
    words = []
    for q in range(_SMALLEST_POWER, 0):
        power = 5**-q
        z = power.bit_length()  # 2**z > power: 5**k is never a power of two
        if q >= -27:
            c = 2 ** (z + 127) // power + 1
        else:
            c = 2 ** (2 * z + 128) // power + 1
            while c >= 1 << 128:
                c //= 2
        words += [c >> 64, c & 0xFFFFFFFFFFFFFFFF]
    for q in range(0, _LARGEST_POWER + 1):
        power = 5**q
        while power < 1 << 127:
            power *= 2
        while power >= 1 << 128:
            power //= 2
        words += [power >> 64, power & 0xFFFFFFFFFFFFFFFF]
    return np.array(words, dtype=np.uint64)


_POWERS_OF_FIVE = _powers_of_five()


@njit(cache=False, nogil=True, inline="always")
def _multiply(a, b):  # pragma: no cover - compiled
    """The 128-bit product of two uint64, as (high, low)."""
    a_lo, a_hi, b_lo, b_hi = a & _MASK32, a >> _U64(32), b & _MASK32, b >> _U64(32)
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    middle = (p0 >> _U64(32)) + (p1 & _MASK32) + (p2 & _MASK32)
    high = p3 + (p1 >> _U64(32)) + (p2 >> _U64(32)) + (middle >> _U64(32))
    low = (middle << _U64(32)) | (p0 & _MASK32)
    return high, low


@cached
@njit(cache=False, nogil=True)
def _leading_zeros(w):  # pragma: no cover - compiled
    count = 0
    for bits in (32, 16, 8, 4, 2, 1):
        if w < (_U64(1) << _U64(64 - bits)):
            w = w << _U64(bits)
            count += bits
    return count


@cached
@njit(cache=False, nogil=True)
def _bits_of(w, q):  # pragma: no cover - compiled
    """The IEEE bits of the double nearest w * 10**q (w > 0, 19 digits at most), or 0x7FF << 52
    (infinity) when it overflows; fast_float's ``compute_float``."""
    if q < _SMALLEST_POWER:
        return _U64(0)
    if q > _LARGEST_POWER:
        return _U64(0x7FF) << _U64(52)
    lz = _leading_zeros(w)
    w = w << _U64(lz)
    index = 2 * (q - _SMALLEST_POWER)
    high, low = _multiply(w, _POWERS_OF_FIVE[index])
    if (high & _PRECISION_MASK) == _PRECISION_MASK:
        second_high, _ = _multiply(w, _POWERS_OF_FIVE[index + 1])
        low = low + second_high
        if second_high > low:
            high = high + _U64(1)
    upperbit = int(high >> _U64(63))
    shift = upperbit + 64 - 52 - 3
    mantissa = high >> _U64(shift)
    power2 = (((152170 + 65536) * q) >> 16) + 63 + upperbit - lz + 1023
    if power2 <= 0:  # subnormal
        if -power2 + 1 >= 64:
            return _U64(0)
        mantissa = mantissa >> _U64(-power2 + 1)
        mantissa = mantissa + (mantissa & _U64(1))
        mantissa = mantissa >> _U64(1)
        return mantissa  # at 2**52 it is the smallest normal's bits, exponent field 1
    if low <= _U64(1) and -4 <= q <= 23 and (mantissa & _U64(3)) == _U64(1):
        if (mantissa << _U64(shift)) == high:  # exactly half-way: round to even, downwards here
            mantissa = mantissa & ~_U64(1)
    mantissa = mantissa + (mantissa & _U64(1))
    mantissa = mantissa >> _U64(1)
    if mantissa >= (_U64(2) << _U64(52)):
        mantissa = _IMPLICIT_BIT
        power2 += 1
    if power2 >= 0x7FF:
        return _U64(0x7FF) << _U64(52)
    return (mantissa & ~_IMPLICIT_BIT) | (_U64(power2) << _U64(52))


@cached
@njit(cache=False, nogil=True)
def _skip_space(data, i):  # pragma: no cover - compiled
    n = data.shape[0]
    while i < n and (data[i] == 0x20 or data[i] == 0x0A or data[i] == 0x0D or data[i] == 0x09):
        i += 1
    return i


@cached
@njit(cache=False, nogil=True)
def _parse_rows(data, width, out, start=-1):  # pragma: no cover - compiled
    """Rows read into ``out`` (float64, rows x width): their number, or -1 where the body is not
    that plain form. With ``start``: the one row (a list of ``width`` numbers) at data[start] read
    into ``out[0]``, and the index past its ``]``, or -1."""
    n = data.shape[0]
    bits = np.zeros(1, dtype=np.uint64)
    as_double = bits.view(np.float64)
    one_row = start >= 0
    if one_row:
        i = start
    else:
        i = _skip_space(data, 0)
        if i >= n or data[i] != 0x5B:  # [
            return -1
        i = _skip_space(data, i + 1)
    rows = 0
    while True:
        if i >= n or data[i] != 0x5B or rows >= out.shape[0]:
            return -1
        i += 1
        for column in range(width):
            i = _skip_space(data, i)
            negative = i < n and data[i] == 0x2D  # -
            if negative:
                i += 1
            if i >= n or data[i] < 0x30 or data[i] > 0x39:
                return -1
            w = _U64(0)
            digits = 0
            exponent = 0
            if data[i] == 0x30:  # a leading 0 stands alone
                i += 1
            else:
                while i < n and 0x30 <= data[i] <= 0x39:
                    if digits == 19:
                        return -1
                    w = w * _U64(10) + _U64(data[i] - 0x30)
                    digits += 1
                    i += 1
            if i < n and data[i] == 0x2E:  # .
                i += 1
                if i >= n or data[i] < 0x30 or data[i] > 0x39:
                    return -1
                while i < n and 0x30 <= data[i] <= 0x39:
                    exponent -= 1
                    if w != _U64(0) or data[i] != 0x30:  # zeros before the first digit count for nothing
                        if digits == 19:
                            return -1
                        w = w * _U64(10) + _U64(data[i] - 0x30)
                        digits += 1
                    i += 1
            if i < n and (data[i] == 0x65 or data[i] == 0x45):  # e E
                i += 1
                sign = 1
                if i < n and (data[i] == 0x2B or data[i] == 0x2D):
                    sign = -1 if data[i] == 0x2D else 1
                    i += 1
                if i >= n or data[i] < 0x30 or data[i] > 0x39:
                    return -1
                written = 0
                while i < n and 0x30 <= data[i] <= 0x39:
                    if written < 100_000:
                        written = written * 10 + (data[i] - 0x30)
                    i += 1
                exponent += sign * written
            if w == _U64(0):
                if negative:
                    return -1  # -0 is an int 0 to json, -0.0 a float: leave both to the usual path
                value = 0.0
            elif w <= _MAX_FAST_MANTISSA and -22 <= exponent <= 22:  # exact operands, one rounding
                value = float(w) * _EXACT_POWERS[exponent] if exponent >= 0 else float(w) / _EXACT_POWERS[-exponent]
            else:
                bits[0] = _bits_of(w, exponent)
                if (bits[0] >> _U64(52)) == _U64(0x7FF):
                    return -1  # past the largest double: orjson and json refuse it
                value = as_double[0]
            out[rows, column] = -value if negative else value
            i = _skip_space(data, i)
            if column < width - 1:
                if i >= n or data[i] != 0x2C:  # ,
                    return -1
                i += 1
        if i >= n or data[i] != 0x5D:  # ]
            return -1
        if one_row:
            return i + 1
        rows += 1
        i = _skip_space(data, i + 1)
        if i < n and data[i] == 0x2C:
            i = _skip_space(data, i + 1)
            continue
        if i < n and data[i] == 0x5D:
            return rows if _skip_space(data, i + 1) == n else -1
        return -1


def read_number_rows(body: bytes, width: int, start: int = 0, end: int | None = None) -> np.ndarray | None:
    """The (rows, width) float64 matrix of ``body[start:end]`` (read in place, not copied) when it
    is exactly ``[[width numbers], ...]`` with at least one row, or None (see the module docstring)."""
    end = len(body) if end is None else end
    rows = body.count(b"[", start, end) - 1  # the rows there are if it has this form; checked while reading
    # a row takes at least 2 * width + 1 bytes: more "[" than that is no such matrix, and bounds the array
    if width < 1 or not 1 <= rows <= (end - start) // (2 * width + 1):
        return None
    out = np.empty((rows, width), dtype=np.float64)
    read = _parse_rows(np.frombuffer(body, dtype=np.uint8, count=end - start, offset=start), width, out)
    return out if read == rows else None


def read_number_list(body: bytes, count: int, start: int) -> tuple[np.ndarray, int] | None:
    """(float64 array, index past its ``]``) of the list of exactly ``count`` numbers at
    ``body[start]`` (read in place), or None where it is not that list in the plain form."""
    out = np.empty((1, count), dtype=np.float64)
    end = _parse_rows(np.frombuffer(body, dtype=np.uint8), count, out, start)
    return (out[0], end) if end >= 0 else None


# compiled now, on import, for the types every call has
read_number_rows(b"[[0, 1.5, 2e-400]]", 3)
read_number_list(b"[0, 1.5, 2e-400]", 3, 0)
