"""Real network peers for tests (RTSP server, ipycam ONVIF camera, HTTP receiver).

See procs.py (process helpers), receiver.py, rtsp_server.py, ipycam_launcher.py.
"""
