// The hook tests under jsdom, with React 19 (this app's) or, with LOGS_REACT=18, React 18
// and its Testing Library from ./react18 (their own node_modules, so each react-dom finds
// its own react).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const version = process.env.LOGS_REACT ?? '19';
if (!['18', '19'].includes(version)) throw new Error(`LOGS_REACT=${version}: use 18 or 19`);
const modules = version === '18' ? './react18/node_modules/' : './node_modules/';
const at = (name) => fileURLToPath(new URL(modules + name, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^react$/, replacement: at('react/index.js') },
      { find: /^@testing-library\/react$/, replacement: at('@testing-library/react/dist/index.js') },
    ],
  },
  test: { environment: 'jsdom', include: ['react/*.test.js'] },
});
