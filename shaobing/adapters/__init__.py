"""The distributed mode's adapters, one home for everything on Redis: the event bus
(``redis_bus``: Redis Streams with consumer groups, and the disk spool in front of it),
camera leases and fencing tokens (``leases``), the workers' live state, the status view
the API reads, the alert feed across processes and the fencing wrappers of the bus
(``redis_state``). Only the composition root (``shaobing/bootstrap.py``) wires them; the
embedded adapters live beside their ports (``alerts/adapters``, ``camera_registry``)."""
