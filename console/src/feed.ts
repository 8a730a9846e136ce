// The live feed (server-sent events from /api/events), shared by every view: new alerts,
// alert changes, camera states. High and critical alerts pop up with a sound, and so does
// an alert escalated to a higher severity (high or critical); the sound can be muted (kept
// per user in this browser). A pop-up opens the alert, or the alert with the camera's live
// video next to its evidence.
import { h, ref, watch } from 'vue'
import { ElButton, ElNotification } from 'element-plus'
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
const muteKey = () => `shaobing.${session.me?.username ?? ''}.muted`
/** The alert sound is off (the pop-ups still come). */
export const muted = ref(false)
watch(muted, (m) => session.me && localStorage.setItem(muteKey(), m ? '1' : '0'))
const RANK: Record<string, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 }
// What this console has seen of each alert: an escalation is a severity above it.
const seen = new Map<string, { severity: string; level: number }>()
/** How many times the sound played (what the browser tests read). */
export const beeps = ref(0)
type Opener = (id: string, live?: boolean) => void

export function onAlert(listener: Listener): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** Two short tones made by WebAudio (no sound file to fetch). */
function beep(): void {
  if (muted.value) return
  beeps.value += 1
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

function popup(alert: Alert, openAlert: Opener, escalated = false): void {
  beep()
  const t = i18n.global.t
  if (popups.length >= MAX_POPUPS) popups.shift()?.close()
  const title = escalated ? t('alerts.escalated') : t('alerts.newAlert')
  popups.push(ElNotification({
    title: `${title} · ${t('severity.' + alert.severity)} · ${label('types', alert.type)}`,
    message: h('div', { 'data-popup-alert': alert.id, 'data-escalated': escalated ? '1' : '0' }, [
      h('div', `${alert.camera.name} — ${explanation(alert.trace)}`),
      h(ElButton, { size: 'small', type: 'primary', link: true, 'data-test': 'popup-live',
                    onClick: (e: Event) => { e.stopPropagation(); openAlert(alert.id, true) } },
        () => t('alerts.openLive')),
    ]),
    type: 'error',
    duration: 0,
    offset: 48, // below the header and its buttons
    customClass: 'alert-popup',
    onClick: () => openAlert(alert.id),
  }))
}

const high = (severity: string) => (RANK[severity] ?? 0) >= RANK.high

/** Whether a changed alert was escalated to a higher severity than this console knew of it
 * (an alert it has not seen yet: escalated, still waiting, and not popped up at this level). */
function escalation(alert: Alert): boolean {
  const before = seen.get(alert.id)
  if (before) return (RANK[alert.severity] ?? 0) > (RANK[before.severity] ?? 0)
  return alert.handling.escalation_level > 0 && alert.status === 'new'
}

export function startFeed(openAlert: Opener): void {
  if (source) return
  muted.value = localStorage.getItem(muteKey()) === '1'
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
      const raised = kind === 'alert_changed' && escalation(alert)
      seen.set(alert.id, { severity: alert.severity, level: alert.handling.escalation_level })
      if (kind === 'alert_changed') {
        if (raised && high(alert.severity)) popup(alert, openAlert, true)
        return
      }
      if (!location.hash.startsWith('#/alerts')) unseen.value += 1
      if (high(alert.severity)) popup(alert, openAlert)
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
  seen.clear()
}
