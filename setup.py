"""Only the C extensions live here; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engine._featurize",
            ["engine/_featurize.c"],
            depends=["engine/_featurize_core.h", "engine/_gil.h"],
            extra_compile_args=["-O2", "-std=c11"],
        ),
        Extension(
            "engine._heads",
            ["engine/_heads.c"],
            depends=["engine/_heads_core.h"],
            extra_compile_args=["-O2", "-std=c11"],
        ),
        Extension(
            "engine._tokens",
            ["engine/_tokens.c"],
            depends=["engine/_tokens_core.h", "engine/_gil.h"],
            extra_compile_args=["-O2", "-std=c11"],
        ),
        Extension(
            "engine._wire",
            ["engine/_wire.c"],
            depends=["engine/_wire_core.h"],
            extra_compile_args=["-O2", "-std=c11"],
        ),
        # No floating-point contraction: the policy kernel must give the Python loop's floats.
        Extension(
            "engine._policy",
            ["engine/_policy.c"],
            depends=["engine/_fmt.h", "engine/_policy_core.h"],
            extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off"],
        ),
        # The same floats as the Python path's glue between the kernels: no contraction either.
        Extension(
            "engine._fastpath",
            ["engine/_fastpath.c"],
            depends=[
                "engine/_fastpath_wire.h",
                "engine/_fastpath_signals.h",
                "engine/_fastpath_plan.h",
                "engine/_fastpath_write.h",
                "engine/_wire_core.h",
                "engine/_featurize_core.h",
                "engine/_heads_core.h",
                "engine/_tokens_core.h",
                "engine/_gil.h",
            ],
            extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off"],
        ),
    ]
)
