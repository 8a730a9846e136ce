// The live feed (server-sent events from /api/events), shared by every view: new alerts,
// alert changes, camera states. High and critical alerts pop up with a sound.
import { ElNotification } from 'element-plus'
import type { Alert, Schemas } from './api/client'
import { i18n } from './i18n'
import { session } from './store'

type Listener = (kind: 'alert' | 'alert_changed', alert: Alert) => void
const listeners = new Set<Listener>()
let source: EventSource | null = null
const MAX_POPUPS = 3  // a burst must not bury the screen: the oldest pop-ups close
const popups: { close: () => void }[] = []

export function onAlert(listener: Listener): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

function beep(): void {
  try {
    const ctx = new AudioContext()
    const osc = ctx.createOscillator()
    osc.frequency.value = 880
    osc.connect(ctx.destination)
    osc.start()
    osc.stop(ctx.currentTime + 0.35)
  } catch {
    /* no audio device: the pop-up is enough */
  }
}

export function startFeed(openAlert: (id: string) => void): void {
  if (source) return
  source = new EventSource('/api/events')
  for (const kind of ['alert', 'alert_changed'] as const) {
    source.addEventListener(kind, (e) => {
      const alert = JSON.parse((e as MessageEvent).data) as Alert
      listeners.forEach((l) => l(kind, alert))
      if (kind === 'alert' && (alert.severity === 'high' || alert.severity === 'critical')) {
        beep()
        const t = i18n.global.t
        if (popups.length >= MAX_POPUPS) popups.shift()?.close()
        const popup = ElNotification({
          title: `${t('alerts.newAlert')} · ${t('severity.' + alert.severity)}`,
          message: `${alert.camera.name} — ${alert.trace.explanation}`,
          type: 'error',
          duration: 0,
          customClass: 'alert-popup',
          onClick: () => openAlert(alert.id),
        })
        popups.push(popup)
      }
    })
  }
  source.addEventListener('camera', (e) => {
    const { id, status } = JSON.parse((e as MessageEvent).data) as {
      id: string
      status: Schemas['CameraStatusOut']
    }
    const cam = session.cameras.find((c) => c.id === id)
    if (cam) cam.status = status
  })
}

export function stopFeed(): void {
  source?.close()
  source = null
}
