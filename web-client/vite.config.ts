import { defineConfig } from 'vite';

// `npm run dev` proxies the API and the websocket to a hub on 127.0.0.1:8080.
export default defineConfig({
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/ws': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
});
