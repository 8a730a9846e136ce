// What every view shares: the logged-in user, the console settings, the cameras, the areas.
import { reactive } from 'vue'
import { api, type Camera, type Schemas } from './api/client'
import { i18n } from './i18n'

export const session = reactive({
  me: null as Schemas['MeOut'] | null,
  settings: null as Schemas['ConsoleSettings'] | null,
  cameras: [] as Camera[],
  areas: [] as Schemas['AreaOut'][],
  live: false, // the event stream is connected
})

export function can(permission: string): boolean {
  return !!session.me?.permissions.includes(permission as never)
}

export async function loadSession(): Promise<boolean> {
  const { data } = await api.GET('/api/auth/me')
  if (!data) return false
  session.me = data
  const [settings, areas] = await Promise.all([api.GET('/api/console/config'), api.GET('/api/areas'), loadCameras()])
  session.settings = settings.data ?? null
  session.areas = areas.data ?? []
  return true
}

export async function loadCameras(): Promise<void> {
  const { data } = await api.GET('/api/cameras')
  if (data) session.cameras = data as Camera[]
}

type AreaLike = { county?: string | null; township?: string | null; village?: string | null }

export function areaLabel(a: AreaLike): string {
  return [a.county, a.township, a.village].filter(Boolean).join(' / ')
}

/** The area as a path the API's `area` parameters take: 示例县/城关镇/人民村. */
export function areaPath(a: AreaLike): string {
  return [a.county, a.township, a.village].filter(Boolean).join('/')
}

/** Area paths (county, township, village) the user can pick, from the area tree and the cameras. */
export function areaOptions(): string[] {
  const paths = new Set<string>()
  for (const a of [...session.areas, ...session.cameras.map((c) => c.area)]) {
    const parts = [a.county, a.township, a.village].filter(Boolean) as string[]
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('/'))
  }
  return [...paths].sort()
}

/** Whether an area lies inside a path (示例县/城关镇 holds 示例县/城关镇/人民村). */
export function inArea(a: AreaLike, path: string): boolean {
  const p = areaPath(a)
  return !path || p === path || p.startsWith(path + '/')
}

export const time = (s?: number | null): string =>
  s ? new Date(s * 1000).toLocaleString(i18n.global.locale.value, { hour12: false }) : ''

/** Download a response body (xlsx, zip) under a name. */
export async function download(res: Response, name: string): Promise<void> {
  const url = URL.createObjectURL(await res.blob())
  const link = Object.assign(document.createElement('a'), { href: url, download: name })
  document.body.appendChild(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
}
