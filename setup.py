from setuptools import find_packages, setup

setup(
    name="mesostw",
    version="1.11.0",
    description="A two-level cluster resource manager in the spirit of Apache Mesos, on Twisted",
    python_requires=">=3.11",
    # twisted/plugins has no __init__.py (it is Twisted's package): every dropin in it is shipped by the glob.
    packages=find_packages(include=["mesostw", "mesostw.*", "frameworks", "frameworks.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["*.py"]},
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
