// The typed API client, generated from the hub's OpenAPI document (npm run gen:api).
import createClient from 'openapi-fetch'
import type { components, paths } from './schema'
import { i18n } from '../i18n'

export type Schemas = components['schemas']
export type Alert = Schemas['AlertOut']
export type Camera = Schemas['CameraOut']

export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' })

// A 401 anywhere means the session ended: back to the login page. Errors come in the
// console's language (api/errors_zh.py answers Accept-Language: zh-CN in Chinese).
api.use({
  onRequest({ request }) {
    request.headers.set('Accept-Language', i18n.global.locale.value === 'zh-CN' ? 'zh-CN' : 'en')
    return request
  },
  onResponse({ response }) {
    if (response.status === 401 && !location.hash.startsWith('#/login')) {
      location.hash = '#/login'
    }
    return response
  },
})

export function errorText(error: unknown): string {
  if (!error) return ''
  const detail = (error as { detail?: unknown }).detail
  if (typeof detail === 'string') return detail
  if (Array.isArray(detail)) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).filter((p, i) => i || p !== 'body').join('.')}: ${d.msg}`)
      .join('; ')
  }
  return JSON.stringify(error)
}
