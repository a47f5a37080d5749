import os

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext


class build_plain_library(build_ext):
    """Builds the native command executor as a plain shared library, loaded with ctypes (it has no
    module init and does not include Python.h)."""

    def get_export_symbols(self, ext):  # noqa: ANN001 - setuptools' signature
        return []  # not PyInit_<name>: it is no extension module

    def run(self):
        # lib/ is no package, so nothing creates it for a build in place (the editable install's)
        if self.inplace:
            for ext in self.extensions:
                os.makedirs(os.path.dirname(self.get_ext_fullpath(ext.name)), exist_ok=True)
        super().run()


# The native command executor (mesostw/executor/native): C only, built with the C compiler, into lib/, which
# is no package (so that no one takes the library for a module to import).
NATIVE = Extension("mesostw.executor.native.lib.command", sources=["mesostw/executor/native/command_executor.c"],
                   extra_compile_args=["-O2", "-fvisibility=hidden", "-std=gnu11"])

setup(
    name="mesostw",
    version="1.11.0",
    description="A two-level cluster resource manager in the spirit of Apache Mesos, on Twisted",
    python_requires=">=3.11",
    # twisted/plugins has no __init__.py (it is Twisted's package): every dropin in it is shipped by the glob.
    packages=find_packages(include=["mesostw", "mesostw.*", "frameworks", "frameworks.*"]) + ["twisted.plugins"],
    # The web UI's page, scripts and styles ship inside the package (no Node.js at install or run time).
    package_data={"twisted.plugins": ["*.py"], "mesostw.ui": ["static/*.html", "static/*.css", "static/js/*.js",
                                                              "static/js/pages/*.js", "static/LICENSE*"]},
    install_requires=[
        "twisted[tls]>=24.3",
        "pyopenssl",
        "service-identity",
        "zope.interface",
        "attrs",
        "psutil",
        "sortedcontainers",
        "kazoo",
        "prometheus-client",
        "croniter",
        "aniso8601",
        "python-dateutil",
    ],
    ext_modules=[NATIVE],
    cmdclass={"build_ext": build_plain_library},
    entry_points={"console_scripts": ["mesostw = mesostw.cli.main:main"]},
)
