// Browser tests of the Container panel: Galata's defaults, Debian's chromium (no browser
// download), and a JupyterLab that tests/ui/run.sh starts (with the registry and the
// cellbox settings it needs). `PORT=... npx playwright test` works against a server that
// is already running on that port.
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.CELLBOX_UI_PORT || '8888';

module.exports = {
  ...baseConfig,
  testDir: '.',
  testMatch: '*.spec.ts',
  // One JupyterLab, one kernel at a time: the tests share a machine with other suites.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  // Pulling and starting a container is part of a test.
  timeout: 240000,
  expect: { timeout: 20000 },
  reporter: [['list'], ['html', { open: 'never' }]],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    // Galata's default video needs Playwright's own ffmpeg download.
    video: 'off',
    trace: 'retain-on-failure',
    viewport: { width: 1280, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      // As root chromium wants --no-sandbox; the machine has no network but loopback, and
      // chromium's background services would keep failing to reach theirs.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage'
      ]
    }
  }
};
