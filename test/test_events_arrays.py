"""Event arrays: dtype, validation with clear errors, slicing, merging, conversion."""

import numpy as np
import pytest

from hybrid_snn_control.events import (
    EVENT_DTYPE,
    as_events,
    make_events,
    merge_events,
    normalize_polarity,
    slice_time,
    validate_events,
)


def test_dtype_is_tonic_compatible():
    assert EVENT_DTYPE.names == ("x", "y", "t", "p")
    assert [EVENT_DTYPE[n] for n in "xytp"] == [np.dtype(d) for d in ("<u2", "<u2", "<i8", "i1")]


def test_validate_reports_what_is_wrong():
    ev = make_events([1, 2, 3], [0, 1, 2], [10, 20, 30], [1, -1, 1])
    validate_events(ev, (4, 3))
    with pytest.raises(ValueError, match="outside the sensor"):
        validate_events(ev, (3, 3))
    with pytest.raises(ValueError, match="non-decreasing"):
        validate_events(ev[::-1], (4, 3))
    bad = ev.copy()
    bad["p"][1] = 0
    with pytest.raises(ValueError, match="polarity"):
        validate_events(bad)
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        validate_events(np.zeros(3))


def test_polarity_normalization():
    np.testing.assert_array_equal(normalize_polarity(np.array([0, 1, 1, 0])), [-1, 1, 1, -1])
    np.testing.assert_array_equal(normalize_polarity(np.array([True, False])), [1, -1])
    with pytest.raises(ValueError, match="polarity must be"):
        normalize_polarity(np.array([0, 2]))


def test_slice_and_merge():
    a = make_events([0, 1, 2], [0, 0, 0], [0, 10, 20], [1, 1, 1])
    b = make_events([5, 6], [1, 1], [5, 10], [-1, -1])
    m = merge_events([a, b])
    assert m["t"].tolist() == [0, 5, 10, 10, 20]
    assert m["x"].tolist() == [0, 5, 1, 6, 2]  # equal times keep input order
    assert slice_time(m, 5, 20)["t"].tolist() == [5, 10, 10]
    with pytest.raises(ValueError, match="t_end_us"):
        slice_time(m, 20, 5)


def test_as_events_converts_foreign_arrays():
    dt = np.dtype([("t", "<f8"), ("x", "<i4"), ("y", "<i4"), ("p", "?")])
    arr = np.array([(1.4, 3, 4, True), (2.6, 5, 6, False)], dt)
    ev = as_events(arr)
    assert ev.dtype == EVENT_DTYPE
    assert ev.tolist() == [(3, 4, 1, 1), (5, 6, 3, -1)]
    with pytest.raises(ValueError, match="missing"):
        as_events(np.zeros(2, [("x", "u2"), ("y", "u2")]))
