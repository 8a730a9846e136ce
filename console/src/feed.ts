// The live feed (server-sent events from /api/events), shared by every view: new alerts,
// alert changes, camera states. High and critical alerts pop up with a sound.
import { ref } from 'vue'
import { ElNotification } from 'element-plus'
import type { Alert, Schemas } from './api/client'
import { explanation, i18n, label } from './i18n'
import { session } from './store'

type Listener = (kind: 'alert' | 'alert_changed' | 'reconnected', alert: Alert | null) => void
const listeners = new Set<Listener>()
let source: EventSource | null = null
let audio: AudioContext | null = null
const MAX_POPUPS = 3 // a burst must not bury the screen: the oldest pop-ups close
const popups: { close: () => void }[] = []
/** New alerts since the operator last looked at the alert list (the nav badge). */
export const unseen = ref(0)

export function onAlert(listener: Listener): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** Two short tones made by WebAudio (no sound file to fetch). */
function beep(): void {
  try {
    audio ??= new AudioContext()
    const now = audio.currentTime
    for (const [at, freq] of [[0, 880], [0.25, 660]]) {
      const osc = audio.createOscillator()
      const gain = audio.createGain()
      osc.frequency.value = freq
      gain.gain.value = 0.2
      osc.connect(gain).connect(audio.destination)
      osc.start(now + at)
      osc.stop(now + at + 0.18)
    }
  } catch {
    /* no audio device: the pop-up is enough */
  }
}

function popup(alert: Alert, openAlert: (id: string) => void): void {
  beep()
  const t = i18n.global.t
  if (popups.length >= MAX_POPUPS) popups.shift()?.close()
  popups.push(ElNotification({
    title: `${t('alerts.newAlert')} · ${t('severity.' + alert.severity)} · ${label('types', alert.type)}`,
    message: `${alert.camera.name} — ${explanation(alert.trace)}`,
    type: 'error',
    duration: 0,
    offset: 48, // below the header and its buttons
    customClass: 'alert-popup',
    onClick: () => openAlert(alert.id),
  }))
}

export function startFeed(openAlert: (id: string) => void): void {
  if (source) return
  source = new EventSource('/api/events')
  let opened = false
  source.onopen = () => {
    session.live = true
    if (opened) listeners.forEach((l) => l('reconnected', null)) // missed events: re-read lists
    opened = true
  }
  source.onerror = () => (session.live = false) // EventSource reconnects by itself
  for (const kind of ['alert', 'alert_changed'] as const) {
    source.addEventListener(kind, (e) => {
      const alert = JSON.parse((e as MessageEvent).data) as Alert
      listeners.forEach((l) => l(kind, alert))
      if (kind !== 'alert') return
      if (!location.hash.startsWith('#/alerts')) unseen.value += 1
      if (alert.severity === 'high' || alert.severity === 'critical') popup(alert, openAlert)
    })
  }
  source.addEventListener('camera', (e) => {
    const { id, status } = JSON.parse((e as MessageEvent).data) as { id: string; status: Schemas['CameraStatusOut'] }
    const cam = session.cameras.find((c) => c.id === id)
    if (cam) cam.status = status
  })
}

export function stopFeed(): void {
  source?.close()
  source = null
  session.live = false
  popups.splice(0).forEach((p) => p.close())
}
