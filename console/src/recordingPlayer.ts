// A camera's recording played in a <video> through the hub's HLS playlist
// (GET /api/recordings/{camera}/playlist.m3u8: fragmented MP4, one media segment per
// recorded segment, remuxed on request, no re-encoding) with hls.js on Media Source
// Extensions. A playlist covers a window around the asked time (BEFORE_S before, AFTER_S
// after); a seek inside it costs one segment, outside it a new playlist. The player's
// position maps to the time of day through each segment's EXT-X-PROGRAM-DATE-TIME.
import Hls from 'hls.js'

export const BEFORE_S = 1800
export const AFTER_S = 7200

interface Frag { start: number; wall: number; dur: number } // player seconds, epoch seconds

export class RecordingPlayer {
  private hls: Hls | null = null
  private frags: Frag[] = []

  constructor(public readonly video: HTMLVideoElement, public readonly camera: string) {}

  /** Loads a playlist around ``at`` (clipped to [min, max]) and starts there (a gap:
   * the next recorded moment). Resolves 0 when playing, else the HTTP status (404:
   * nothing recorded in the window). */
  load(at: number, min: number, max: number): Promise<number> {
    this.destroy()
    const before = Math.max(0, Math.min(BEFORE_S, at - min))
    const end = Math.max(at + 1, Math.min(max, at + AFTER_S))
    const url = `/api/recordings/${encodeURIComponent(this.camera)}/playlist.m3u8`
      + `?start=${at}&end=${end}&before=${before}`
    return new Promise((resolve) => {
      const hls = new Hls({ maxBufferLength: 20, maxMaxBufferLength: 60, backBufferLength: 30,
        xhrSetup: (xhr) => { xhr.withCredentials = true } })
      this.hls = hls
      hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
        this.frags = data.details.fragments.map((f) => ({ start: f.start, wall: (f.programDateTime ?? 0) / 1000,
          dur: f.duration }))
        resolve(0)
      })
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return
        const code = data.response?.code ?? 0
        if (this.hls === hls) this.destroy()
        resolve(code || 500)
      })
      hls.loadSource(url)
      hls.attachMedia(this.video)
    })
  }

  get loaded(): boolean { return this.frags.length > 0 }

  /** The wall-clock time (epoch s) of the frame shown. */
  wall(): number {
    const t = this.video.currentTime
    const f = this.frags.find((x) => t < x.start + x.dur) ?? this.frags[this.frags.length - 1]
    return f ? f.wall + Math.max(0, Math.min(f.dur, t - f.start)) : 0
  }

  /** The wall-clock end of the loaded playlist. */
  end(): number {
    const f = this.frags[this.frags.length - 1]
    return f ? f.wall + f.dur : 0
  }

  /** The player's position showing wall time ``t`` (a gap: the next segment's start);
   * null outside the loaded playlist. */
  position(t: number): number | null {
    const first = this.frags[0]
    if (!first || t < first.wall || t > this.end()) return null
    const f = this.frags.find((x) => t < x.wall + x.dur)
    return f ? f.start + Math.max(0, t - f.wall) : null
  }

  /** Seek to wall time ``t`` inside the loaded playlist; false when it is outside. */
  seek(t: number): boolean {
    const p = this.position(t)
    if (p === null) return false
    this.video.currentTime = p
    return true
  }

  destroy(): void {
    this.hls?.destroy()
    this.hls = null
    this.frags = []
  }
}
