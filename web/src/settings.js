// Per-browser settings. The map draws grid boundaries only, unless an (intranet) tile server
// is set here: a URL template with {z} {x} {y}. Nothing is fetched from outside by default.
import { ref } from 'vue'

const KEY = 'gl.tileUrl'
function read() {
  try {
    return localStorage.getItem(KEY) || ''
  } catch {
    return ''
  }
}
export const tileUrl = ref(read())
export function setTileUrl(v) {
  const s = (v || '').trim()
  tileUrl.value = s
  try {
    if (s) localStorage.setItem(KEY, s)
    else localStorage.removeItem(KEY)
  } catch {
    /* ignore */
  }
}
