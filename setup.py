"""Build hook for the optional C record walk (sensor/_walk.c).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the
install still succeeds and the capture readers use their pure-Python walks.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sensor._walk", ["sensor/_walk.c"], optional=True,
                             extra_compile_args=["-O2"])])
