import os

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, LinkError


class build_native(build_ext):
    """Builds the native command executor: ``lib/mesos-executor``, a program (statically linked when the C
    library allows it, so that an exec costs no dynamic loading), and ``lib/codec*.so``, its JSON and
    RecordIO code as a plain shared library (no module init, no Python.h) that the tests load with ctypes."""

    def get_export_symbols(self, ext):  # noqa: ANN001 - setuptools' signature
        return []  # not PyInit_<name>: it is no extension module

    def run(self):
        # lib/ is no package (nothing imports from it), so nothing creates it for a build in place
        if self.inplace:
            for ext in self.extensions:
                os.makedirs(os.path.dirname(self.get_ext_fullpath(ext.name)), exist_ok=True)
        super().run()
        self.build_program()

    def build_program(self):
        output_dir = os.path.dirname(self.get_ext_fullpath(CODEC.name))
        sources = [os.path.join(NATIVE, name) for name in ("main.c", "executor.c", "codec.c")]
        objects = self.compiler.compile(sources,
                                        output_dir=os.path.join(self.build_temp, "program"),
                                        extra_postargs=["-O2", "-std=gnu11"])
        for static in (["-static"], []):
            try:
                self.compiler.link_executable(objects, "mesos-executor", output_dir=output_dir, libraries=["m"],
                                              extra_postargs=static)
                return
            except (CCompilerError, ExecError, LinkError):
                if not static:
                    raise

    def get_outputs(self):
        return [*super().get_outputs(), os.path.join(os.path.dirname(self.get_ext_fullpath(CODEC.name)),
                                                     "mesos-executor")]


# The native command executor (mesostw/executor/native), C only, built into lib/, which is no package (so
# that no one takes the library for a module to import).
NATIVE = os.path.join("mesostw", "executor", "native")
CODEC = Extension("mesostw.executor.native.lib.codec", sources=[os.path.join(NATIVE, "codec.c")],
                  extra_compile_args=["-O2", "-fvisibility=hidden", "-std=gnu11"], libraries=["m"])


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
    ext_modules=[CODEC],
    cmdclass={"build_ext": build_native},
    entry_points={"console_scripts": ["mesostw = mesostw.cli.main:main"]},
)
