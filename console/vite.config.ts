import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// `npm run dev` proxies the API to a hub on 127.0.0.1:8080; the hub serves the built files.
// Libraries go into their own chunks (cached across releases); each view is loaded on demand.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'element-plus', test: /element-plus|@element-plus|@floating-ui|async-validator|dayjs|lodash/ },
            { name: 'echarts', test: /echarts|zrender/ },
            { name: 'mpegts', test: /mpegts/ },
            { name: 'leaflet', test: /leaflet/ },
          ],
        },
      },
    },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080', '/healthz': 'http://127.0.0.1:8080' },
  },
})
