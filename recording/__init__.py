"""Recording and playback (录像): the cameras' own packets cut at keyframes into MP4
segments (no re-encoding), indexed in the database, kept by retention, played back and
exported as one MP4 per range."""
