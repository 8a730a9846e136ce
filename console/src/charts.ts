// ECharts with only the charts and components the views draw (a fraction of the full build).
import { onBeforeUnmount, type Ref } from 'vue'
import * as echarts from 'echarts/core'
import { BarChart, LineChart, PieChart } from 'echarts/charts'
import { GridComponent, LegendComponent, TitleComponent, TooltipComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([BarChart, LineChart, PieChart, GridComponent, LegendComponent, TitleComponent, TooltipComponent,
  CanvasRenderer])

export type ChartOption = Parameters<echarts.ECharts['setOption']>[0]

/** Draw into an element (created on first use); resized with the window, disposed with the view. */
export function useChart(el: Ref<HTMLElement | undefined>): (option: ChartOption) => void {
  let chart: echarts.ECharts | null = null
  const resize = () => chart?.resize()
  window.addEventListener('resize', resize)
  onBeforeUnmount(() => {
    window.removeEventListener('resize', resize)
    chart?.dispose()
    chart = null
  })
  return (option) => {
    if (!el.value) return
    if (chart && chart.getDom() !== el.value) chart.dispose() // the element was re-rendered
    if (!chart || chart.isDisposed()) chart = echarts.init(el.value)
    chart.setOption(option, true)
  }
}
