import { createRouter, createWebHistory } from 'vue-router'
import { session } from './api.js'
import { homeFor } from './permissions.js'

// The residents' pages are small and load first; the console's pages load on demand.
import Report from './pages/Report.vue'
import Track from './pages/Track.vue'

const routes = [
  { path: '/report', name: 'report', component: Report, meta: { public: true, title: 'report.title' } },
  { path: '/track', name: 'track', component: Track, meta: { public: true, title: 'track.title' } },
  { path: '/login', name: 'login', component: () => import('./pages/Login.vue'), meta: { public: true, bare: true, title: 'login.title' } },
  { path: '/', name: 'home', redirect: () => (session.current ? homeFor(session.current.user.role) : '/login') },
  { path: '/workbench', name: 'workbench', component: () => import('./pages/Workbench.vue'), meta: { title: 'nav.workbench' } },
  { path: '/supervision', name: 'supervision', component: () => import('./pages/Supervision.vue'), meta: { title: 'nav.supervision' } },
  { path: '/cases', name: 'cases', component: () => import('./pages/Workbench.vue'), props: { mode: 'all' }, meta: { title: 'nav.cases' } },
  { path: '/cases/:id', name: 'case', component: () => import('./pages/CasePage.vue'), props: true, meta: { title: 'case.title' } },
  { path: '/inbox', name: 'inbox', component: () => import('./pages/Inbox.vue'), meta: { title: 'nav.inbox' } },
  { path: '/dashboard', name: 'dashboard', component: () => import('./pages/Dashboard.vue'), meta: { title: 'nav.dashboard' } },
  { path: '/:rest(.*)*', name: 'notfound', component: () => import('./pages/NotFound.vue'), meta: { public: true, title: 'common.not_found' } },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach((to) => {
  if (!to.meta.public && !session.current) return { name: 'login', query: { next: to.fullPath } }
  return true
})
