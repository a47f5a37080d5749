"""The v1 operator API (``POST /api/v1``) as master and agent share it: the call table, the HTTP
adapter, the calls both answer (health, flags, version, metrics, logging level, files), the ACL
view filters and the v1 JSON shapes of tasks and files. Neither the master nor the agent is
imported here: each registers its own calls on a :class:`~mesostw.operator.calls.CallTable`."""
