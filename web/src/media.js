import { ref } from 'vue'
const mq = window.matchMedia('(max-width: 760px)')
/** Whether the screen is phone-sized (reactive). */
export const narrow = ref(mq.matches)
mq.addEventListener('change', (e) => (narrow.value = e.matches))
