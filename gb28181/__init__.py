"""GB/T 28181: Shaobing as a platform of the county's video network.

``sip``, ``manscdp``, ``registry``, ``sdp``, ``rtp``, ``ptz`` and ``channels`` are pure (no
I/O); ``server`` (the SIP server component: registration, catalog, INVITE, RecordInfo,
PTZ control, voice broadcast), ``media`` (RTP receivers, the PS pipe), ``source`` (the
ingest opener), ``ondemand`` (live view on demand), ``playback`` and ``export`` (device
recordings into MP4 and case exports) are the adapters.
"""
