# cython: language_level=3, boundscheck=False, wraparound=False
def sum_squares(long long start, long long stop):
    cdef long long i
    cdef object total = 0
    cdef long long chunk = 0
    for i in range(start, stop):
        chunk += i * i
        if chunk > 4000000000000000000:
            total += chunk
            chunk = 0
    return total + chunk
