# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Typed twin of ``mandelbrot.worker.escape_counts``.

The arithmetic is written in the same order as the Python reference and fused multiply-add
contraction is off, so every count is bit-for-bit the one the pure path gives.
"""


def escape_counts(double x_min, double dx, double y_min, double dy, int row_start, int row_stop,
                  int width, int max_iter, int[:, ::1] out):
    """Fill ``out[r - row_start, c]`` with the escape iteration of pixel (r, c), ``max_iter`` if it never escapes."""
    cdef int r, c, n
    cdef double cx, cy, zx, zy, zx2, zy2
    if out.shape[0] != row_stop - row_start or out.shape[1] != width:
        raise ValueError(f"out must have shape ({row_stop - row_start}, {width})")
    with nogil:
        for r in range(row_start, row_stop):
            cy = y_min + r * dy
            for c in range(width):
                cx = x_min + c * dx
                zx = 0.0
                zy = 0.0
                n = 0
                while n < max_iter:
                    zx2 = zx * zx
                    zy2 = zy * zy
                    if zx2 + zy2 > 4.0:
                        break
                    zy = 2.0 * zx * zy + cy
                    zx = zx2 - zy2 + cx
                    n += 1
                out[r - row_start, c] = n
