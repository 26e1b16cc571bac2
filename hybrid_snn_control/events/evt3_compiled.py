"""EVT 3.0 words -> events in one compiled pass (numba), with exactly the events, counters and
:class:`~hybrid_snn_control.events.codecs.Evt3State` of
:func:`~hybrid_snn_control.events.codecs.evt3_decode` (``strict=False``).

Why: the numpy decoder needs ~20 array passes per chunk (11 M ev/s) and the ``evt3``
package, though compiled, leaves us a word-type scan, re-priming at its edges and a copy
of its four arrays into our records (66 M ev/s on random events).  A word-at-a-time state
machine has none of that: one pass writes the records in place, on a copy of the state
that is kept only if the packet held no unknown word (a rejected packet leaves the stream
as it was).

``numba`` is optional (the ``[robot]`` extra); :func:`compiled_available` says whether it
imported.  The first call compiles (or loads the on-disk cache): :func:`warm_up` does it
ahead of the first packet.
"""

from __future__ import annotations

import numpy as np

from hybrid_snn_control.events.arrays import EVENT_DTYPE
from hybrid_snn_control.events.codecs import _POPCOUNT12, DecodeStats, Evt3State, _drop_outside
from hybrid_snn_control.numba_jit import jit, numba_available

__all__ = ["compiled_available", "evt3_decode_compiled", "warm_up"]

_X_MAX = 0x7FF
# counters, carried across the resumptions of one packet: how often the ring wrapped,
# events before their time / y / x base, vector events past x = 2047, unknown words and
# their types (a bitmask), next write index (valid events = wraps x size + next)
_N_COUNTERS = 6
_WRAPS, _INVALID, _WIDE, _UNKNOWN, _UNKNOWN_TYPES, _NEXT = range(_N_COUNTERS)
# set bits of every 12-bit vector mask: how many (codecs' table) and where (a loop over the
# set bits only, with no branch per bit)
_BITS = np.zeros((4096, 12), np.int64)
for _m in range(4096):
    _set = [b for b in range(12) if _m >> b & 1]
    _BITS[_m, : len(_set)] = _set
del _m, _set


def _decode(words, start, st, xs, ys, ts, ps, ring, exact, counters):  # pragma: no cover - jit
    """Decode ``words[start:]`` from ``st`` = [y, base_x, polarity, time_high,
    time_low, loops] (updated in place) into the record fields ``xs, ys, ts, ps``.

    ``ring``: the output is a ring (the newest overwrite the oldest).  ``exact``: it
    was sized by :func:`_event_bound`.  Else it holds one event per word, and a vector
    word whose events would leave too little room for one event per word left stops
    the pass at its index (the caller sizes the output and resumes).  Returns the
    index of the word it stopped at (``words.size``: done)."""
    y, base_x, pol, th, tl, loops = st[0], st[1], st[2], st[3], st[4], st[5]
    wraps, invalid, wide = counters[_WRAPS], counters[_INVALID], counters[_WIDE]
    unknown, unknown_types = counters[_UNKNOWN], counters[_UNKNOWN_TYPES]
    j = counters[_NEXT]
    cap = xs.size
    stop = words.size
    ready = th >= 0 and y >= 0  # time and y are set: events can be placed
    t_high = (loops << 24) + (th << 12)  # time at the last TIME_HIGH
    t_now = t_high + tl
    for i in range(start, words.size):
        w = np.int64(words[i])
        typ = w >> 12
        if typ == 0x2:  # ADDR_X: one event
            if not ready:
                invalid += 1
                continue
            if j == cap:  # the ring only (else sized for every event)
                j = 0
                wraps += 1
            xs[j] = w & _X_MAX
            ys[j] = y
            ts[j] = t_now
            ps[j] = ((w >> 10) & 2) - 1
            j += 1
        elif typ == 0x0:  # ADDR_Y
            y = w & _X_MAX
            ready = th >= 0
        elif typ == 0x6:  # TIME_LOW
            tl = w & 0xFFF
            t_now = t_high + tl
        elif typ == 0x4 or typ == 0x5:  # VECT_12 / VECT_8: bit b is x = base + b
            span = 12 if typ == 0x4 else 8
            mask = w & ((1 << span) - 1)
            k = _POPCOUNT12[mask]
            if not ring and not exact and j + k + (words.size - i - 1) > cap:
                stop = i
                break
            if not ready or base_x < 0:
                invalid += k
            elif base_x + span - 1 <= _X_MAX and j + k <= cap:  # the common case
                p = 2 * pol - 1
                for q in range(k):
                    xs[j + q] = base_x + _BITS[mask, q]
                    ys[j + q] = y
                    ts[j + q] = t_now
                    ps[j + q] = p
                j += k
            else:  # past x = 2047 (dropped), or the ring wraps in this word
                for q in range(k):
                    x = base_x + _BITS[mask, q]
                    if x > _X_MAX:
                        wide += 1
                        continue
                    if j == cap:
                        j = 0
                        wraps += 1
                    xs[j] = x
                    ys[j] = y
                    ts[j] = t_now
                    ps[j] = 2 * pol - 1
                    j += 1
            if base_x >= 0:
                base_x += span
        elif typ == 0x8:  # TIME_HIGH: any fall is a 24-bit wrap
            v = w & 0xFFF
            if th >= 0 and v < th:
                loops += 1
            th, tl = v, 0
            t_high = (loops << 24) + (th << 12)
            t_now = t_high
            ready = y >= 0
        elif typ == 0x3:  # VECT_BASE_X
            base_x, pol = w & _X_MAX, (w >> 11) & 1
        elif typ == 0x1 or typ == 0x9 or (typ >= 0xB and typ <= 0xD):
            unknown += 1
            unknown_types |= 1 << typ
        # CONTINUED_4, EXT_TRIGGER, OTHERS, CONTINUED_12: skipped
    st[0], st[1], st[2], st[3], st[4], st[5] = y, base_x, pol, th, tl, loops
    counters[_WRAPS], counters[_INVALID], counters[_WIDE] = wraps, invalid, wide
    counters[_UNKNOWN], counters[_UNKNOWN_TYPES] = unknown, unknown_types
    counters[_NEXT] = j
    return stop


def _event_bound(words):  # pragma: no cover - jit
    """At most how many events ``words`` make: ADDR_X words plus the vectors' set bits."""
    n = 0
    for i in range(words.size):
        w = np.int64(words[i])
        typ = w >> 12
        if typ == 0x2:
            n += 1
        elif typ == 0x4:
            n += _POPCOUNT12[w & 0xFFF]
        elif typ == 0x5:
            n += _POPCOUNT12[w & 0xFF]
    return n


if not numba_available():  # pragma: no cover - depends on the install
    _compiled = _compiled_bound = None
else:  # optional: numpy / the evt3 package decode the same events without it
    _compiled = jit(_decode)
    _compiled_bound = jit(_event_bound)


def compiled_available() -> bool:
    """True when numba imports (the ``[robot]`` extra)."""
    return _compiled is not None


def warm_up() -> None:
    """Compile (or load from the cache) before the first packet: ~1 s the first time."""
    if _compiled is not None:
        words = np.frombuffer(bytes(4), "<u2")  # read-only, as packets are: one signature
        evt3_decode_compiled(words, Evt3State())


def _state_array(st: Evt3State) -> np.ndarray:
    return np.array([st.y, st.base_x, st.polarity, st.time_high, st.time_low, st.loops], np.int64)


def _fields(out: np.ndarray) -> tuple[np.ndarray, ...]:
    return out["x"], out["y"], out["t"], out["p"]


def evt3_decode_compiled(
    words: np.ndarray,
    state: Evt3State,
    sensor_size: tuple[int, int] | None = None,
    stats: DecodeStats | None = None,
    max_events: int | None = None,
) -> np.ndarray:
    """:func:`evt3_decode` (``strict=False``) of little-endian uint16 ``words``, compiled.

    Unknown word types raise ``ValueError`` with ``state`` and the event counters untouched
    (``stats.unknown_words`` counts them), as the stream decoder rejects such packets.
    ``max_events`` keeps the newest (the rest in ``stats.overflow_events``): past it the
    output is a ring of that size, so memory stays bounded by it.  The output starts at one
    event per word (all a payload without vectors can hold; untouched pages cost nothing);
    when vectors need more, a counting pass over the rest sizes it once.
    """
    if _compiled is None:
        raise ImportError("the compiled EVT 3.0 decoder needs numba (pip install numba)")
    stats = stats if stats is not None else DecodeStats()
    words = np.ascontiguousarray(words, "<u2").view()
    words.flags.writeable = False  # one compiled signature, whatever buffer it came from
    limit = None if max_events is None else max(int(max_events), 0)
    counters = np.zeros(_N_COUNTERS, np.int64)
    st = _state_array(state)
    ring = limit is not None and limit <= words.size
    out = np.empty(max(limit if ring else words.size, 1), EVENT_DTYPE)
    pos = _compiled(words, 0, st, *_fields(out), ring, False, counters)
    if pos < words.size:  # vectors: size the output for them (a ring stays) and go on
        if not ring:
            n = int(counters[_NEXT])
            bound = n + int(_compiled_bound(words[pos:]))
            ring = limit is not None and limit <= bound
            grown = np.empty(max(limit if ring else bound, 1), EVENT_DTYPE)
            grown[:n] = out[:n]
            out = grown
        _compiled(words, pos, st, *_fields(out), ring, True, counters)
    if counters[_UNKNOWN]:
        n, mask = int(counters[_UNKNOWN]), int(counters[_UNKNOWN_TYPES])
        stats.unknown_words += n
        bad = [t for t in range(16) if mask >> t & 1]
        raise ValueError(f"evt3 packet malformed: {n} words of unknown type {bad}")
    (state.y, state.base_x, state.polarity, state.time_high, state.time_low, state.loops) = (
        int(v) for v in st
    )
    nxt = int(counters[_NEXT])
    valid = int(counters[_WRAPS]) * out.size + nxt
    if limit == 0:
        out = out[:0]
    elif ring and valid > out.size:  # the ring wrapped: oldest first
        out = np.concatenate([out[nxt:], out[:nxt]])
    else:
        out = out[:valid]
    invalid, wide = int(counters[_INVALID]), int(counters[_WIDE])
    if invalid:
        stats.drop(f"evt3: {invalid} events before their time/y/x base were set")
    if wide:
        stats.drop(f"evt3: {wide} vector events beyond x = {_X_MAX}")
    stats.dropped_events += invalid + wide
    stats.overflow_events += valid - out.size
    out = _drop_outside(out, sensor_size, False, stats, "evt3")
    stats.events += out.size
    return out
