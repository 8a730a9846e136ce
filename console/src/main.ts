import { createApp } from 'vue'
import { createRouter, createWebHashHistory } from 'vue-router'
import ElementPlus from 'element-plus'
import zhCn from 'element-plus/dist/locale/zh-cn.mjs'
import en from 'element-plus/dist/locale/en.mjs'
import 'element-plus/dist/index.css'
import App from './App.vue'
import { i18n } from './i18n'
import { loadSession, session } from './store'

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
  ],
})

router.beforeEach(async (to) => {
  if (to.path === '/login') return true
  if (!session.me && !(await loadSession())) return '/login'
  return true
})

const locale = i18n.global.locale.value === 'en' ? en : zhCn
createApp(App).use(router).use(i18n).use(ElementPlus, { locale }).mount('#app')
