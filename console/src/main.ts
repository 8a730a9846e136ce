import { createApp } from 'vue'
import { createRouter, createWebHashHistory } from 'vue-router'
import {
  ElAlert, ElAside, ElButton, ElCard, ElCheckbox, ElCheckboxGroup, ElCol, ElConfigProvider, ElContainer,
  ElDatePicker, ElDescriptions, ElDescriptionsItem, ElDialog, ElDrawer, ElEmpty, ElForm, ElFormItem, ElHeader,
  ElInput, ElInputNumber, ElLink, ElMain, ElMenu, ElMenuItem, ElOption, ElPagination, ElPopconfirm, ElRadioButton,
  ElRadioGroup,
  ElRow, ElSelect, ElStatistic, ElSwitch, ElTabPane, ElTable, ElTableColumn, ElTabs, ElTag, ElTimeline,
  ElTimelineItem, ElTimeSelect, ElTree,
} from 'element-plus'
import 'element-plus/dist/index.css'
import App from './App.vue'
import { i18n } from './i18n'
import { loadSession, session } from './store'

// Hash routes: the hub serves one index.html at / and every view lives behind #/...
const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/login', component: () => import('./views/LoginView.vue') },
    { path: '/', redirect: '/wall' },
    { path: '/wall', component: () => import('./views/WallView.vue') },
    { path: '/alerts', component: () => import('./views/AlertsView.vue') },
    { path: '/map', component: () => import('./views/MapView.vue') },
    { path: '/health', component: () => import('./views/HealthView.vue') },
    { path: '/zones', component: () => import('./views/ZonesView.vue') },
    { path: '/search', component: () => import('./views/SearchView.vue') },
    { path: '/analysis', component: () => import('./views/AnalysisView.vue') },
    { path: '/system', component: () => import('./views/SystemView.vue') },
    { path: '/playback', component: () => import('./views/PlaybackView.vue') }, // 录像回放 (issue 24)
    { path: '/linkage', component: () => import('./views/LinkageView.vue') }, // issue 27
    { path: '/:rest(.*)*', redirect: '/wall' },
  ],
})

router.beforeEach(async (to) => {
  if (to.path === '/login') return true
  if (!session.me && !(await loadSession())) return '/login'
  return true
})

const app = createApp(App).use(router).use(i18n)
// Only the Element Plus components the views use (the full library is three times larger).
for (const c of [ElAlert, ElAside, ElButton, ElCard, ElCheckbox, ElCheckboxGroup, ElCol, ElConfigProvider,
  ElContainer, ElDatePicker, ElDescriptions, ElDescriptionsItem, ElDialog, ElDrawer, ElEmpty, ElForm, ElFormItem,
  ElHeader, ElInput, ElInputNumber, ElLink, ElMain, ElMenu, ElMenuItem, ElOption, ElPagination, ElPopconfirm, ElRadioButton,
  ElRadioGroup, ElRow, ElSelect, ElStatistic, ElSwitch, ElTabPane, ElTable, ElTableColumn, ElTabs, ElTag,
  ElTimeline, ElTimelineItem, ElTimeSelect, ElTree]) {
  app.component(c.name!, c) // by name: a sub-component (ElOption, ElRadioButton) installs nothing itself
}
app.mount('#app')
