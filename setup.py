from setuptools import find_packages, setup

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
    entry_points={"console_scripts": ["mesostw = mesostw.cli.main:main"]},
)
