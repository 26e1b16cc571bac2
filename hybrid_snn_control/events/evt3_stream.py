"""EVT 3.0 packets of one stream -> events: our compiled decoder
(:mod:`~hybrid_snn_control.events.evt3_compiled`, numba) when numba is installed, else the
``evt3`` package (Rust) when it is, else
:func:`~hybrid_snn_control.events.codecs.evt3_decode` (numpy), with the same events, counters
and :class:`~hybrid_snn_control.events.codecs.Evt3State` whichever runs.

The compiled decoder is a word-at-a-time state machine with our semantics, so it needs none
of what follows.  The package (PyPI ``evt3``, an optional extra) decodes ~10x faster than
numpy and agrees with
:func:`evt3_decode` on a stream whose state is set, but not at the edges:

* it ignores every word before the stream's first TIME_HIGH (ADDR_Y and VECT_BASE_X too),
  and gives events with no ADDR_Y / VECT_BASE_X yet y = 0 / a vector base of 0, where ours
  drops and counts them;
* it counts a 24-bit time wrap only when TIME_HIGH falls by >= 4085 steps (OpenEB's rule);
  ours counts any fall (what :func:`evt3_encode`'s bridging TIME_HIGH words rely on, and
  what keeps time monotonic when packets are lost across a wrap);
* its vector x is a uint16 that wraps at 65536; ours drops every vector event past 2047;
* it skips unknown word types silently.

So :class:`Evt3StreamDecoder` keeps the state exact in both backends and hands a packet to
the package only where the package cannot differ ("clean"): the state has a TIME_HIGH and an
ADDR_Y (and a VECT_BASE_X before any vector word), no TIME_HIGH falls by less than 4085
steps, and no vector run can reach x = 65536 (one vectorized scan of the word types finds
all this).  The words of a stream before its first TIME_HIGH and ADDR_Y make no events and
go to numpy, the rest of that packet to the package; any other packet that is not clean
(corrupt data, sparse TIME_HIGHs) goes to numpy whole, and the package is re-primed from the
state (TIME_HIGH, TIME_LOW, ADDR_Y, VECT_BASE_X words) before the next clean one.

Dropped counts stay exact without counting the events the words encode (popcounts of every
vector mask would cost a pass per packet): numpy counts the events before their bases,
since it decodes every word that precedes them, and on a clean packet the only events ours
drops are vector events past x = 2047, which the package returns with x > 2047 and the
decoder filters and counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybrid_snn_control.events import evt3_compiled
from hybrid_snn_control.events.arrays import EVENT_DTYPE, empty_events
from hybrid_snn_control.events.codecs import (
    EVT3_UNKNOWN_TYPES,
    EVT_ADDR_Y,
    EVT_TIME_HIGH,
    EVT_TIME_LOW,
    VECT_8,
    VECT_12,
    VECT_BASE_X,
    DecodeStats,
    Evt3State,
    _byte_view,
    _drop_outside,
    evt3_decode,
)

try:  # optional: the [robot] extra installs it; numpy decodes without it
    import evt3 as _evt3_package
except ImportError:  # pragma: no cover - depends on the install
    _evt3_package = None

__all__ = ["BACKENDS", "Evt3StreamDecoder", "evt3_package_available"]

BACKENDS = ("auto", "numba", "evt3", "numpy")
_FEED_WORDS = 1 << 16  # 128 KiB per feed, numpy's chunk: both hold max_events + one chunk
_SCAN_WORDS = 1 << 16  # words per scan step: the temporaries stay in cache
_PKG_WRAP_FALL = 4085  # the package's wrap rule: TIME_HIGH falls by >= this many steps
_PKG_X_END = 1 << 16  # the package's uint16 vector x wraps here
_X_MAX = 0x7FF  # EVT 3.0 addresses are 11 bits; ours drops vector events beyond
_UNKNOWN_MASK = sum(1 << t for t in EVT3_UNKNOWN_TYPES)
_VECTOR_MASK = (1 << VECT_12) | (1 << VECT_8)
_ONE = np.uint16(1)
_NO_POSITIONS = np.zeros(0, np.intp)


def evt3_package_available() -> bool:
    """True when the ``evt3`` package imports (the ``[robot]`` extra)."""
    return _evt3_package is not None


@dataclass
class _Packet:
    """A packet's words and what one scan found in them."""

    words: np.ndarray  # little-endian uint16
    types: int  # bitmask of the word types present (may over-state for a tail, see after())
    p_hi: np.ndarray  # TIME_HIGH positions (scanned for the package only)
    n_vectors: int  # VECT_12 + VECT_8 words (counted for the package only)
    last_base: int  # position of the last VECT_BASE_X (-1: none; for the package only)

    def has(self, typ: int) -> bool:
        return bool(self.types >> typ & 1)

    def after(self, k: int) -> _Packet:
        """The words from ``k`` on (``types`` still names the whole packet's: a superset)."""
        n_vec = self.n_vectors and _vector_words(self.words[k:])
        p_hi, last_base = self.p_hi[self.p_hi >= k] - k, max(self.last_base - k, -1)
        return _Packet(self.words[k:], self.types, p_hi, n_vec, last_base)


def _scan(words: np.ndarray, positions: bool) -> _Packet:
    """One pass in cache-sized steps: the types present and (``positions``) where the
    TIME_HIGH words and the last VECT_BASE_X are, and how many vector words there are."""
    types, hi, n_vec, last_base = 0, [], 0, -1
    for i in range(0, words.size, _SCAN_WORDS):
        typ = words[i : i + _SCAN_WORDS] >> 12
        found = int(np.bitwise_or.reduce(np.left_shift(_ONE, typ)))
        types |= found
        if not positions:
            continue
        if found >> EVT_TIME_HIGH & 1:
            hi.append((typ == EVT_TIME_HIGH).nonzero()[0] + i)
        if found & _VECTOR_MASK:
            n_vec += int(np.count_nonzero(typ - np.uint16(VECT_12) <= VECT_8 - VECT_12))
        if found >> VECT_BASE_X & 1:
            last_base, base_typ = i, typ
    if last_base >= 0:  # searched in its chunk only
        last_base += int((base_typ == VECT_BASE_X).nonzero()[0][-1])
    hi = np.concatenate(hi) if hi else _NO_POSITIONS
    return _Packet(words, types, hi, n_vec, last_base)


def _checked_words(payload: Any, stats: DecodeStats) -> np.ndarray:
    """The packet's words, or ``ValueError`` for an odd byte count (a truncated packet)."""
    raw = _byte_view(payload, "evt3")
    if raw.nbytes % 2:
        stats.dropped_bytes += 1
        raise ValueError(f"evt3 packet malformed: {raw.nbytes} bytes is odd (truncated)")
    return np.frombuffer(raw, "<u2")


def _checked_packet(payload: Any, stats: DecodeStats, positions: bool) -> _Packet:
    """The packet scanned, or ``ValueError`` for an odd byte count or unknown word types:
    checked before anything is decoded, so a rejected packet leaves the stream state as it
    was (a vectorized scan of the types; the decoders would find the same later)."""
    pkt = _scan(_checked_words(payload, stats), positions)
    if pkt.types & _UNKNOWN_MASK:
        typ = pkt.words >> 12
        n_unknown = int(np.count_nonzero((np.left_shift(_ONE, typ) & _UNKNOWN_MASK) != 0))
        stats.unknown_words += n_unknown
        bad = [t for t in range(16) if _UNKNOWN_MASK & pkt.types & (1 << t)]
        raise ValueError(f"evt3 packet malformed: {n_unknown} words of unknown type {bad}")
    return pkt


def _last_index(words: np.ndarray, typ: int, start: int = 0) -> int:
    """Index of the last word of type ``typ`` in ``words[start:]`` (-1: none), searched back
    from the end in growing windows: the last ADDR_Y / TIME_LOW is usually a few words away."""
    end, size = words.size, 256
    while end > start:
        lo = max(start, end - size)
        hits = (words[lo:end] >> 12 == typ).nonzero()[0]
        if hits.size:
            return lo + int(hits[-1])
        end, size = lo, size * 8
    return -1


def _first_index(words: np.ndarray, typ: int) -> int:
    """Index of the first word of type ``typ`` (-1: none), in growing windows from the start."""
    start, size = 0, 256
    while start < words.size:
        hits = (words[start : start + size] >> 12 == typ).nonzero()[0]
        if hits.size:
            return start + int(hits[0])
        start, size = start + size, size * 8
    return -1


def _vector_words(words: np.ndarray) -> int:
    """How many VECT_12 / VECT_8 words ``words`` holds."""
    return int(np.count_nonzero((words >> 12) - np.uint16(VECT_12) <= VECT_8 - VECT_12))


def _vector_columns(words: np.ndarray) -> int:
    """How far the vector words in ``words`` move the vector base (12 / 8 columns each)."""
    typ = words >> 12
    return 12 * int(np.count_nonzero(typ == VECT_12)) + 8 * int(np.count_nonzero(typ == VECT_8))


def _time_high_falls(pkt: _Packet, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The packet's TIME_HIGH values and how far each falls below the one before."""
    vals = (pkt.words[pkt.p_hi] & 0xFFF).astype(np.int64)
    return vals, np.concatenate([[last], vals[:-1]]) - vals


def _keep_in_range(part: tuple[np.ndarray, ...], stats: DecodeStats) -> tuple[np.ndarray, ...]:
    """Drop (and count) vector events past x = 2047, as ``evt3_decode`` does."""
    x = part[0]
    if x.size == 0 or int(x.max()) <= _X_MAX:
        return part
    keep = x <= _X_MAX
    n_wide = int(x.size - np.count_nonzero(keep))
    stats.drop(f"evt3: {n_wide} vector events beyond x = {_X_MAX}")
    stats.dropped_events += n_wide
    return tuple(a[keep] for a in part)


def _to_events(parts: deque, t_offset: int) -> np.ndarray:
    """The package's arrays (x, y, timestamp, polarity 0/1) as one EVENT_DTYPE array."""
    out = np.empty(sum(p[0].size for p in parts), EVENT_DTYPE)
    i = 0
    for x, y, t, p in parts:
        o = out[i : i + x.size]
        o["x"], o["y"] = x, y
        if t_offset:
            np.add(t.view(np.int64), t_offset, out=o["t"])
        else:
            o["t"] = t.view(np.int64)
        o["p"] = ((p << 1) - 1).view(np.int8)  # 0/1 as uint8 -> 255/1, i.e. -1/+1
        i += x.size
    return out


class Evt3StreamDecoder:
    """Decodes consecutive EVT 3.0 packets of one stream (the state carries across them).

    ``backend``: ``"auto"`` (numba when it imports, else the package, else numpy),
    ``"numba"`` (the compiled decoder, compiled or loaded from its cache here),
    ``"evt3"`` (the package) or ``"numpy"``; ``ImportError`` when the one named is missing.
    :attr:`backend` says which one runs; :attr:`state` is the :class:`Evt3State` numpy
    would have after the same packets, in all;
    :attr:`numpy_packets` counts the packets the ``evt3`` backend left to numpy (see the
    module docstring).  Counters match :func:`evt3_decode` (``strict=False``) exactly;
    ``stats.messages`` may be split into chunks differently.
    """

    def __init__(self, sensor_size: tuple[int, int] | None = None, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "evt3" and _evt3_package is None:
            raise ImportError("backend 'evt3' needs the evt3 package (pip install evt3)")
        if backend == "numba" and not evt3_compiled.compiled_available():
            raise ImportError("backend 'numba' needs numba (pip install numba)")
        if backend == "auto":
            backend = (
                "numba"
                if evt3_compiled.compiled_available()
                else "evt3"
                if _evt3_package is not None
                else "numpy"
            )
        self.backend = backend
        use_package = backend == "evt3"
        if backend == "numba":
            evt3_compiled.warm_up()
        self.sensor_size = (
            None if sensor_size is None else (int(sensor_size[0]), int(sensor_size[1]))
        )
        self.state = Evt3State()
        self.numpy_packets = 0
        # the package's sensor size only labels its output; it filters nothing
        self._package = _evt3_package.Decoder(2048, 2048) if use_package else None
        self._primed = False  # the package's state matches self.state
        self._t_offset = 0  # sensor µs the package's timestamps are behind ours (wraps)

    def reset(self) -> None:
        """Forget the stream (a sensor restart): the next packet starts from scratch."""
        self.state = Evt3State()
        self._primed = False

    def decode(
        self,
        payload: bytes | bytearray | memoryview,
        stats: DecodeStats | None = None,
        max_events: int | None = None,
    ) -> np.ndarray:
        """One packet's events (``t`` in sensor µs), like :func:`evt3_decode` with
        ``strict=False``.  ``ValueError`` (state untouched) for an odd byte count or unknown
        word types.  ``max_events``: keep only the newest, counting the rest in
        ``stats.overflow_events``; memory stays bounded by it plus one 128 KiB chunk's events.
        """
        stats = stats if stats is not None else DecodeStats()
        if self.backend == "numba":  # it rejects unknown words itself, state untouched
            words = _checked_words(payload, stats)
            return evt3_compiled.evt3_decode_compiled(
                words, self.state, self.sensor_size, stats, max_events
            )
        pkt = _checked_packet(payload, stats, positions=self._package is not None)
        if self._package is not None:
            k = self._set_up_after(pkt)
            if k > 0:  # words before the stream's first TIME_HIGH / ADDR_Y: no events
                evt3_decode(pkt.words[:k], self.state, strict=False, stats=stats)
                pkt, self._primed = pkt.after(k), False
            falls = _time_high_falls(pkt, self.state.time_high)
            if self._clean(pkt, falls[1]):
                out = self._decode_package(pkt, stats, max_events)
                self._advance(pkt, falls)
                out = _drop_outside(out, self.sensor_size, False, stats, "evt3")
                stats.events += out.size
                return out
            self.numpy_packets += 1
            self._primed = False
        return evt3_decode(
            pkt.words,
            self.state,
            self.sensor_size,
            strict=False,
            stats=stats,
            max_events=max_events,
        )

    # -- the package path ----------------------------------------------------------------
    def _set_up_after(self, pkt: _Packet) -> int:
        """Words after which the state has its first TIME_HIGH and ADDR_Y (0: it has them,
        -1: not in this packet).  Every event before them is dropped, so numpy can decode
        just these words and leave the rest of a stream's first packet to the package."""
        st, ends = self.state, [0]
        if st.time_high < 0:
            ends.append(int(pkt.p_hi[0]) + 1 if pkt.p_hi.size else -1)
        if st.y < 0:
            i = _first_index(pkt.words, EVT_ADDR_Y)
            ends.append(i + 1 if i >= 0 else -1)
        return -1 if -1 in ends else max(ends)

    def _clean(self, pkt: _Packet, falls: np.ndarray) -> bool:
        """Whether the package decodes this packet exactly as numpy would (module docstring)."""
        st = self.state
        if st.time_high < 0 or st.y < 0:
            return False
        if falls.size and ((falls > 0) & (falls < _PKG_WRAP_FALL)).any():
            return False
        return not pkt.n_vectors or self._vectors_fit(pkt)

    def _vectors_fit(self, pkt: _Packet) -> bool:
        """No vector word before the stream's first VECT_BASE_X, and no run of vector words
        reaching x = 65536.  All the packet's vector words in one run is a bound; else runs
        are bounded by their length in words, and only runs that could reach it are
        counted exactly."""
        st, words = self.state, pkt.words
        if st.base_x < 0:  # the package would put vectors before the first base at x 0
            q = _first_index(words, VECT_BASE_X)
            if q < 0 or _vector_words(words[:q]):
                return False
        if max(st.base_x, _X_MAX) + 12 * pkt.n_vectors <= _PKG_X_END:
            return True
        p_base = np.flatnonzero(words >> 12 == VECT_BASE_X)
        starts = np.concatenate([[0], p_base + 1])
        stops = np.concatenate([p_base, [words.size]])
        base0 = np.full(starts.size, _X_MAX, np.int64)
        base0[0] = st.base_x
        long_runs = np.flatnonzero((stops > starts) & (base0 + 12 * (stops - starts) > _PKG_X_END))
        for j in long_runs.tolist():
            columns = _vector_columns(words[starts[j] : stops[j]])
            if columns and base0[j] + columns > _PKG_X_END:
                return False
        return True

    def _prime(self) -> None:
        """Reset the package and feed it words that set its state to :attr:`state`."""
        st = self.state
        words = [EVT_TIME_HIGH << 12 | st.time_high, EVT_TIME_LOW << 12 | st.time_low]
        words.append(EVT_ADDR_Y << 12 | st.y)
        if 0 <= st.base_x < _PKG_X_END:  # beyond 2047: a base plus empty VECT_12 words
            k = max(0, -(-(st.base_x - _X_MAX) // 12))
            words.append(VECT_BASE_X << 12 | st.polarity << 11 | (st.base_x - 12 * k))
            words += [VECT_12 << 12] * k
        self._package.reset()
        self._package.feed(np.array(words, "<u2").tobytes())  # sets state, makes no events
        self._t_offset = st.loops << 24
        self._primed = True

    def _decode_package(
        self, pkt: _Packet, stats: DecodeStats, max_events: int | None
    ) -> np.ndarray:
        """Feed the package in 128 KiB chunks, keeping only the newest ``max_events``."""
        if not self._primed:
            self._prime()
        parts: deque[tuple[np.ndarray, ...]] = deque()
        kept = overflow = 0
        for i in range(0, pkt.words.size, _FEED_WORDS):
            ev = self._package.feed(pkt.words[i : i + _FEED_WORDS].tobytes())
            part = _keep_in_range((ev.x, ev.y, ev.timestamp, ev.polarity), stats)
            parts.append(part)
            kept += part[0].size
            while max_events is not None and kept > max_events:
                excess = kept - max_events
                if parts[0][0].size <= excess:
                    excess = parts.popleft()[0].size
                else:  # a copy: the full chunk can go
                    parts[0] = tuple(a[excess:].copy() for a in parts[0])
                kept -= excess
                overflow += excess
        stats.overflow_events += overflow
        return _to_events(parts, self._t_offset) if parts else empty_events()

    def _advance(self, pkt: _Packet, falls: tuple[np.ndarray, np.ndarray]) -> None:
        """Move :attr:`state` past a packet the package decoded, as numpy would have."""
        st, words = self.state, pkt.words
        vals, fall = falls
        if vals.size:
            st.loops += int(np.count_nonzero(fall > 0))  # every fall is a wrap here (clean)
            st.time_high, st.time_low = int(vals[-1]), 0
        if pkt.has(EVT_TIME_LOW):
            i = _last_index(words, EVT_TIME_LOW, int(pkt.p_hi[-1]) + 1 if vals.size else 0)
            st.time_low = int(words[i] & 0xFFF) if i >= 0 else st.time_low
        i = _last_index(words, EVT_ADDR_Y) if pkt.has(EVT_ADDR_Y) else -1
        st.y = int(words[i] & _X_MAX) if i >= 0 else st.y
        q = pkt.last_base
        if q >= 0:
            st.polarity = int(words[q] >> 11) & 1
            st.base_x = int(words[q] & _X_MAX) + _vector_columns(words[q + 1 :])
        elif pkt.n_vectors:  # st.base_x >= 0 here (clean)
            st.base_x += _vector_columns(words)
