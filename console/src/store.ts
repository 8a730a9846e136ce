// What every view shares: the logged-in user, the console settings, the cameras.
import { reactive } from 'vue'
import { api, type Camera, type Schemas } from './api/client'

export const session = reactive({
  me: null as Schemas['MeOut'] | null,
  settings: null as Schemas['ConsoleSettings'] | null,
  cameras: [] as Camera[],
})

export function can(permission: string): boolean {
  return !!session.me?.permissions.includes(permission as never)
}

export async function loadSession(): Promise<boolean> {
  const { data } = await api.GET('/api/auth/me')
  if (!data) return false
  session.me = data
  const settings = await api.GET('/api/console/config')
  session.settings = settings.data ?? null
  await loadCameras()
  return true
}

export async function loadCameras(): Promise<void> {
  const { data } = await api.GET('/api/cameras')
  if (data) session.cameras = data as Camera[]
}

export function areaLabel(a: { county?: string | null; township?: string | null; village?: string | null }): string {
  return [a.county, a.township, a.village].filter(Boolean).join(' / ')
}
