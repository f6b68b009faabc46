"""Builds descent's optional C kernels; everything else is declared in pyproject.toml.

The kernels include no torch headers (they are called through ctypes), so they compile in about a
second with the system C compiler. ``optional=True``: without a compiler the package still
installs and the update rules fall back to their eager torch path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "descent.optim._kernels",
            ["src/descent/optim/_kernels.c"],
            # IEEE arithmetic in the written order, so float64 results match the reference steps;
            # -fno-math-errno lets sqrt vectorize.
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp"],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ]
)
