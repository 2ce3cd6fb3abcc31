// The resident's own recent reports on this phone (number and the phone's last 4 digits only).
const KEY = 'gl.myReports'
export function recentReports() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || '[]')
  } catch {
    return []
  }
}
export function rememberReport(number, last4) {
  try {
    const list = recentReports().filter((r) => r.number !== number)
    list.unshift({ number, last4, at: Date.now() })
    localStorage.setItem(KEY, JSON.stringify(list.slice(0, 10)))
  } catch {
    /* ignore */
  }
}
