// What every view shares: the logged-in user, the console settings, the cameras, the areas.
import { reactive } from 'vue'
import { api, type Camera, type Schemas } from './api/client'
import { i18n } from './i18n'

export const session = reactive({
  me: null as Schemas['MeOut'] | null,
  settings: null as Schemas['ConsoleSettings'] | null,
  /** Every camera in the user's scope when `allCameras`; otherwise (a county's 100,000) the
   *  cameras the console has come across so far: on the wall, in the tree, in a search. */
  cameras: [] as Camera[],
  allCameras: true,
  cameraTotal: 0,
  /** The camera tree's places with their counts (GET /api/cameras/areas), when not all
   *  cameras are loaded. */
  places: [] as Schemas['CameraAreaOut'][],
  areas: [] as Schemas['AreaOut'][],
  live: false, // the event stream is connected
})

/** Up to this many cameras the console loads them all at login (the tree, selects and map
 *  work from that list); above, it asks the API per place and per search. The
 *  `shaobing.fullListMax` entry of localStorage overrides it (tests, benchmarks). */
export const FULL_LIST_MAX = Number(localStorage.getItem('shaobing.fullListMax') || 2000)

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

/** The cameras: all of them when there are few (one page of one tells the total), else the
 *  tree's summary only. */
export async function loadCameras(): Promise<void> {
  const probe = await api.GET('/api/cameras', { params: { query: { limit: 1 } } })
  const total = Number(probe.response.headers.get('X-Total-Count') ?? 0)
  session.cameraTotal = total
  if (!probe.data || total <= FULL_LIST_MAX) {
    const { data } = await api.GET('/api/cameras')
    if (data) session.cameras = data as Camera[]
    session.allCameras = true
    session.places = []
    return
  }
  session.allCameras = false
  session.cameras = []
  await loadPlaces()
}

export async function loadPlaces(): Promise<void> {
  const { data } = await api.GET('/api/cameras/areas')
  if (data) session.places = data
}

/** Keep cameras the console was given (a page of the tree, a search) so that views can
 *  name them and the live feed can update their state; the newest copy wins. */
export function rememberCameras(cams: Camera[]): Camera[] {
  if (session.allCameras) return cams
  const index = new Map(session.cameras.map((c, i) => [c.id, i]))
  for (const cam of cams) {
    const i = index.get(cam.id)
    if (i === undefined) {
      index.set(cam.id, session.cameras.length)
      session.cameras.push(cam)
    } else session.cameras[i] = cam
  }
  return cams.map((c) => session.cameras[index.get(c.id)!])
}

/** A camera by id: from the list, else asked of the API (and remembered). */
export async function fetchCamera(id: string): Promise<Camera | null> {
  const known = session.cameras.find((c) => c.id === id)
  if (known || session.allCameras) return known ?? null
  const { data } = await api.GET('/api/cameras/{camera_id}', { params: { path: { camera_id: id } } })
  return data ? rememberCameras([data])[0] : null
}

/** One page of cameras (the tree, a search): the cameras and the total. */
export async function cameraPage(query: { area?: string; exact?: boolean; q?: string; limit: number; offset?: number },
): Promise<{ cameras: Camera[]; total: number }> {
  const { data, response } = await api.GET('/api/cameras', { params: { query } })
  const cameras = rememberCameras(data ?? [])
  return { cameras, total: Number(response.headers.get('X-Total-Count') ?? cameras.length) }
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
  for (const a of [...session.areas, ...session.places, ...session.cameras.map((c) => c.area)]) {
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

/** The hub's time zone (console settings): every time is shown in it, as in the exports and
 *  statistics, whatever the browser's own zone. */
export const hubTimeZone = (): string | undefined => session.settings?.timezone ?? undefined

/** Seconds east of UTC of the hub's zone at an instant. */
export function hubOffsetS(epochS: number): number {
  const at = Math.floor(epochS)
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: hubTimeZone(), hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
    hour: 'numeric', minute: 'numeric', second: 'numeric',
  })
  const p: Record<string, number> = {}
  for (const part of format.formatToParts(new Date(at * 1000))) if (part.type !== 'literal') p[part.type] = Number(part.value)
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) / 1000 - at
}

/** The hub's midnight that starts a calendar day (a date picker's day: its y/m/d). */
export function hubMidnight(day: Date): number {
  const utcMidnight = Date.UTC(day.getFullYear(), day.getMonth(), day.getDate()) / 1000
  const first = utcMidnight - hubOffsetS(utcMidnight)
  return utcMidnight - hubOffsetS(first) // again at the answer: right across a DST change
}

/** The calendar day of an instant in the hub's zone, as a date picker's Date. */
export function hubDay(epochS: number): Date {
  const shifted = new Date((Math.floor(epochS) + hubOffsetS(epochS)) * 1000)
  return new Date(shifted.getUTCFullYear(), shifted.getUTCMonth(), shifted.getUTCDate())
}

export const time = (s?: number | null): string =>
  s
    ? new Date(s * 1000).toLocaleString(i18n.global.locale.value, { hour12: false, timeZone: hubTimeZone() })
    : ''

/** Download a response body (xlsx, zip) under a name. */
export async function download(res: Response, name: string): Promise<void> {
  const url = URL.createObjectURL(await res.blob())
  const link = Object.assign(document.createElement('a'), { href: url, download: name })
  document.body.appendChild(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
}
