"""mandelbrot: a CPU-bound app whose Cython kernel makes the execution modes differ visibly."""
