"""GB/T 28181: Shaobing as a platform of the county's video network.

``sip``, ``manscdp``, ``registry``, ``sdp``, ``rtp`` and ``channels`` are pure (no I/O);
``server`` (the SIP server component), ``media`` (RTP receivers, the PS pipe) and
``source`` (the ingest opener) are the adapters.
"""
