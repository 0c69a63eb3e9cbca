# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Typed twins of the numpy reference in ``flight_telemetry.worker``.

Same formulas written in the same order, one pass over typed memoryviews without the GIL and no
temporary arrays. ``nearest_airport`` also skips airports that a latitude bound proves farther than
the best so far, which changes the work but not the answer.

Inputs are ``const double[::1]``: under pandas 3 (copy-on-write) ``Series.to_numpy()`` returns a
read-only view, and a plain ``double[::1]`` refuses it ("buffer source array is read-only"). ``const``
accepts read-only and writable arrays alike, without a copy.
"""
import numpy as np
from libc.math cimport asin, cos, fabs, sin, sqrt, M_PI

cdef double EARTH_RADIUS_NM = 3440.065
cdef double RAD = M_PI / 180.0


cdef inline double _hav(double dlat, double dlon, double cos_product) noexcept nogil:
    """Haversine of two points from their differences in radians, as the numpy reference writes it."""
    cdef double s1 = sin(dlat * 0.5), s2 = sin(dlon * 0.5)
    return s1 * s1 + cos_product * (s2 * s2)


def segments_nm(const double[::1] lat, const double[::1] lon):
    """Great-circle distance (nm) from the previous sample to each sample, 0 for the first."""
    cdef Py_ssize_t i, n = lat.shape[0]
    if lon.shape[0] != n:
        raise ValueError("lat and lon must have the same length")
    out = np.zeros(n, dtype=np.float64)
    cdef double[::1] seg = out
    with nogil:
        for i in range(1, n):
            seg[i] = 2.0 * EARTH_RADIUS_NM * asin(sqrt(
                _hav((lat[i] - lat[i - 1]) * RAD, (lon[i] - lon[i - 1]) * RAD, cos(lat[i - 1] * RAD) * cos(lat[i] * RAD))))
    return out


def count_climbs(const double[::1] rate, double threshold, Py_ssize_t min_len):
    """Runs of consecutive samples with ``rate > threshold`` lasting at least ``min_len`` samples."""
    cdef Py_ssize_t i, run = 0, n = rate.shape[0], climbs = 0
    with nogil:
        for i in range(n):
            if rate[i] > threshold:
                run += 1
            else:
                if run >= min_len:
                    climbs += 1
                run = 0
        if run >= min_len:
            climbs += 1
    return climbs


def nearest_airport(const double[::1] lat, const double[::1] lon, const double[::1] ap_lat, const double[::1] ap_lon):
    """Index of and distance (nm) to the nearest reference airport, for every sample; ties go to the lower index.

    Starts from the previous sample's airport (usually still the nearest) and skips an airport when
    its latitude alone puts it farther: h >= sin^2(dlat / 2), so |dlat| > 2 asin(sqrt(best h)) cannot win.
    """
    cdef Py_ssize_t i, k, n = lat.shape[0], m = ap_lat.shape[0], best = 0, prev = 0
    cdef double lat_r, lon_r, cos_lat, h, best_h, reach
    if lon.shape[0] != n or ap_lon.shape[0] != m or m == 0:
        raise ValueError("lat/lon and ap_lat/ap_lon must pair up, with at least one airport")
    idx_out = np.zeros(n, dtype=np.int64)
    dist_out = np.zeros(n, dtype=np.float64)
    ap_r = np.asarray(ap_lat, dtype=np.float64) * RAD
    cos_ap_arr = np.cos(ap_r)
    cdef long long[::1] idx = idx_out
    cdef double[::1] dist = dist_out
    cdef double[::1] cos_ap = cos_ap_arr
    with nogil:
        for i in range(n):
            lat_r = lat[i] * RAD
            lon_r = lon[i] * RAD
            cos_lat = cos(lat_r)
            best = prev
            best_h = _hav(ap_lat[prev] * RAD - lat_r, ap_lon[prev] * RAD - lon_r, cos_lat * cos_ap[prev])
            reach = 2.0 * asin(sqrt(best_h)) + 1e-12
            for k in range(m):
                if k == prev or fabs(ap_lat[k] * RAD - lat_r) > reach:
                    continue
                h = _hav(ap_lat[k] * RAD - lat_r, ap_lon[k] * RAD - lon_r, cos_lat * cos_ap[k])
                if h < best_h or (h == best_h and k < best):
                    best_h = h
                    best = k
                    reach = 2.0 * asin(sqrt(best_h)) + 1e-12
            idx[i] = best
            dist[i] = 2.0 * EARTH_RADIUS_NM * asin(sqrt(best_h))
            prev = best
    return idx_out, dist_out
