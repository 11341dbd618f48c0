"""Only the C extension lives here; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engine._featurize", ["engine/_featurize.c"], extra_compile_args=["-O2", "-std=c11"]
        ),
    ]
)
