// ECharts, tree-shaken to what the dashboard draws. Loaded only with the dashboard.
import * as echarts from 'echarts/core'
import { BarChart, LineChart, PieChart, MapChart } from 'echarts/charts'
import { GridComponent, TooltipComponent, LegendComponent, VisualMapComponent, TitleComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([BarChart, LineChart, PieChart, MapChart, GridComponent, TooltipComponent, LegendComponent, VisualMapComponent, TitleComponent, CanvasRenderer])

export { echarts }
export const PALETTE = ['#b4232a', '#2f6fb3', '#e08a1e', '#2e9d6a', '#7a4fb5', '#c2508a', '#4aa3b8', '#8c7b3a', '#5b6b7f', '#d4b106']
