import { defineConfig } from 'vitest/config';

// Unit tests of the web client's pure parts (and the connection with a fake socket), in a
// happy-dom document: `npm test`.
export default defineConfig({
  test: { environment: 'happy-dom', include: ['test/**/*.test.ts'], reporters: ['default'] },
});
