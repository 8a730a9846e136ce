// The investigator's case: alerts collected from the lists (kept per user in this browser)
// until they are exported as one signed evidence package.
import { ref, watch } from 'vue'
import { session } from './store'

const key = () => `shaobing.${session.me?.username ?? ''}.case`
export const caseIds = ref<string[]>([])

export function loadCase(): void {
  try {
    caseIds.value = JSON.parse(localStorage.getItem(key()) ?? '[]') as string[]
  } catch {
    caseIds.value = []
  }
}

export function addToCase(ids: string[]): number {
  const fresh = ids.filter((id) => !caseIds.value.includes(id))
  caseIds.value = [...caseIds.value, ...fresh].slice(0, 200) // the export takes 200 at most
  return fresh.length
}

export function removeFromCase(id: string): void {
  caseIds.value = caseIds.value.filter((x) => x !== id)
}

watch(caseIds, (ids) => session.me && localStorage.setItem(key(), JSON.stringify(ids)))
