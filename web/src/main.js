import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router.js'
import { t } from './i18n.js'
import { setUnauthorizedHandler } from './api.js'
import { resetOrgs } from './orgs.js'
import './style.css'

const app = createApp(App)
app.config.globalProperties.$t = t
app.use(router)
setUnauthorizedHandler(() => {
  resetOrgs()
  const here = router.currentRoute.value
  if (!here.meta.public && here.name !== 'login') router.replace({ name: 'login', query: { next: here.fullPath } })
})
app.mount('#app')
