"""Act on site (联动): linkage rules that turn a PTZ camera to its preset, speak a
warning through the site's speaker, pop up another camera and dispatch, plus the
operator's PTZ control, WS-Discovery and voice (喊话).

Layers, imports pointing one way:

* domain, no I/O: :mod:`linkage.config` (rules and actions as data),
  :mod:`linkage.rules` (alert × rule → planned actions), :mod:`linkage.arbiter`
  (who holds a PTZ camera, when it returns home), :mod:`linkage.g711`.
* ports: :mod:`linkage.ports` (PTZ, speaker, recorder of results).
* adapters: :mod:`linkage.onvif_ptz`, :mod:`linkage.discovery`, :mod:`linkage.tts`,
  :mod:`linkage.sip`, :mod:`linkage.voice`, :mod:`linkage.recorder` (alert history
  and audit in SQL).
* the component: :mod:`linkage.engine` (``start``/``stop``/``health``), wired by
  :mod:`linkage.wiring`.
"""
