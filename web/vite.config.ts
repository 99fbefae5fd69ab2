import { defineConfig } from "vite";

// The build is embedded in the ipintel binary (crates/ipintel-http/build.rs)
// and served under a strict Content-Security-Policy: no inline scripts or
// styles, every file from the service itself.
export default defineConfig({
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // Every image (the flags) as a file of its own, fetched only when shown.
    assetsInlineLimit: 0,
    sourcemap: false,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      "/v1": "http://127.0.0.1:8080",
    },
  },
});
