/*
 * The Container panel in a real JupyterLab, on a real cellbox kernel, in Debian's chromium.
 * tests/ui/run.sh provides the registry (docker.io's mirror), the store and the server.
 */
import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';
import { execFileSync } from 'child_process';

const PANEL = '#cellbox-panel';

/** Put `source` in a new cell at the end of the notebook; its index. */
async function addCode(page: IJupyterLabPageFixture, source: string): Promise<number> {
  const cells = await page.locator('.jp-Notebook .jp-Cell').count();
  const empty = cells === 1 && (await page.notebook.getCellTextInput(0)) === '';
  if (empty) {
    await page.notebook.setCell(0, 'code', source);
    return 0;
  }
  await page.notebook.addCell('code', source);
  return cells;
}

/** Put `source` in a new cell at the end of the notebook and run it to completion. */
async function runCode(page: IJupyterLabPageFixture, source: string): Promise<number> {
  const index = await addCode(page, source);
  await page.notebook.runCell(index, true);
  return index;
}

async function outputOf(page: IJupyterLabPageFixture, index: number): Promise<string> {
  return ((await page.notebook.getCellTextOutput(index)) ?? []).join('');
}

async function openPanel(page: IJupyterLabPageFixture): Promise<Locator> {
  await page.sidebar.openTab('cellbox-panel');
  const panel = page.locator(PANEL);
  await expect(panel).toBeVisible();
  return panel;
}

/** The rows of `cellbox history --no-trunc IMAGE`, header left out. */
function cliHistory(image: string): string[] {
  const out = execFileSync('cellbox', ['history', '--no-trunc', image], {
    encoding: 'utf-8',
    env: process.env
  });
  return out
    .split('\n')
    .slice(1)
    .filter(line => line.trim() !== '');
}

async function memoryLatest(chart: Locator): Promise<number> {
  const value = await chart.getAttribute('data-latest');
  return value ? Number(value) : 0;
}

// One page, one JupyterLab load for the whole walk (a load costs chromium about 9 s of
// CPU); each part is a step of its own in the report.
test.describe('Container panel', () => {
  // Tall enough for the whole panel (summary to charts) in one screenshot.
  test.use({ autoGoto: true, viewport: { width: 1280, height: 1500 } });

  test('on a cellbox kernel, then on another kernel', async ({ page, tmpPath }, testInfo) => {
    await page.notebook.createNew('panel.ipynb', { kernel: 'cellbox' });
    const first = await runCode(page, '%container busybox --memory 64m --network none\necho ready');
    expect(await outputOf(page, first)).toContain('ready');

    const panel = await openPanel(page);
    const card = panel.locator('.cbx-container.cbx-mod-current');
    const memory = card.locator('svg.cbx-chart-memory');

    await test.step('summary and layers', async () => {
      await expect(card).toBeVisible();
      await expect(card.locator('.cbx-field-image')).toContainText('busybox');
      await expect(card.locator('.cbx-state-badge')).toHaveText('running');
      await expect(card.locator('.cbx-field-limits')).toContainText('64 MiB memory');
      // Layers: one row per `cellbox history` row, same order, same "created by".
      const rows = card.locator('.cbx-layer-row.cbx-layer-image');
      const cli = cliHistory('busybox');
      await expect(rows).toHaveCount(cli.length);
      for (let i = 0; i < cli.length; i++) {
        const createdBy = (await rows.nth(i).getAttribute('data-created-by')) ?? '';
        expect(createdBy).not.toBe('');
        expect(cli[i]).toContain(createdBy);
      }
      await expect(card.locator('.cbx-layer-upper')).toHaveCount(1);
    });

    await test.step('logs', async () => {
      // A line echoed by a cell shows up, marked with its cell. (A cell's output comes
      // through the shell's terminal, where stdout and stderr are one stream; the two are
      // told apart for the container's own output: see the jest and kernel tests.)
      const marker = `ui-log-line-${Date.now()}`;
      await runCode(page, `echo ${marker}`);
      const logs = card.locator('.cbx-log-lines');
      await expect(logs.locator('.cbx-log-line', { hasText: marker })).toHaveCount(1, {
        timeout: 10000
      });
      await expect(logs.locator('.cbx-log-cell').last()).toContainText('cell [');
      // The filter box narrows the tail, and emptying it brings every line back.
      const all = await logs.locator('.cbx-log-line').count();
      expect(all).toBeGreaterThan(1);
      await card.locator('.cbx-log-filter').fill(marker);
      await expect(logs.locator('.cbx-log-line')).toHaveCount(1);
      await card.locator('.cbx-log-filter').fill('');
      await expect(logs.locator('.cbx-log-line')).toHaveCount(all);
    });

    await test.step('usage', async () => {
      // The memory chart rises while a cell holds 32 MiB (a file in /dev/shm is memory
      // charged to the container's cgroup).
      await expect(memory).toHaveAttribute('data-latest', /\d+/, { timeout: 10000 });
      const hold = await addCode(
        page,
        'dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null; sleep 6; rm /dev/shm/fill'
      );
      const before = await memoryLatest(memory);
      await page.notebook.runCell(hold, { inplace: true, wait: false });
      await expect
        .poll(() => memoryLatest(memory), { timeout: 10000, intervals: [250] })
        .toBeGreaterThan(before + 24 * 1024 * 1024);
      await page.notebook.waitForRun(hold);
    });

    await test.step('OOM', async () => {
      // A cell that outgrows the 64 MiB limit is killed; the chart marks it.
      await runCode(page, "awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
      await expect(memory.locator('.cbx-oom-mark').first()).toBeAttached({ timeout: 10000 });
      await expect(card.locator('.cbx-oom-note')).toContainText('OOM kills: 1');
      // The status bar shows the current container's memory against its limit.
      await expect(page.locator('.cbx-status')).toContainText('/ 64 MiB');
    });

    await test.step('screenshots, light and dark', async () => {
      await panel.screenshot({ path: testInfo.outputPath('panel-light.png') });
      await page.theme.setDarkTheme();
      await panel.screenshot({ path: testInfo.outputPath('panel-dark.png') });
      await page.theme.setLightTheme();
    });

    await test.step('a narrow panel keeps its layout while it updates', async () => {
      await page.sidebar.setWidth(260, 'right');
      const charts = card.locator('.cbx-usage-charts');
      await expect(card.locator('svg.cbx-chart-cpu')).toHaveAttribute('data-points', /[1-9]/);
      const box = await charts.boundingBox();
      await page.waitForTimeout(2500); // two or three samples later
      const after = await charts.boundingBox();
      expect(after).toEqual(box);
      // Nothing sticks out sideways at this width.
      const overflow = await panel.evaluate(el => el.scrollWidth - el.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      // Keyboard: the sections are reachable with Tab and toggled with Enter.
      const summary = card.locator('summary', { hasText: 'Layers' });
      await summary.focus();
      await page.keyboard.press('Enter');
      await expect(card.locator('details.cbx-section-layers')).not.toHaveAttribute('open', '');
    });

    await test.step('on another kernel it says there is no container', async () => {
      // A notebook made on the server and opened (its kernel is in its metadata): no
      // kernel dialog to wait for.
      const python = `${tmpPath}/python.ipynb`;
      const notebook = {
        cells: [],
        metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
        nbformat: 4,
        nbformat_minor: 5
      };
      expect(await page.contents.uploadContent(JSON.stringify(notebook), 'text', python)).toBe(true);
      expect(await page.notebook.openByPath(python)).toBe(true);
      await expect(panel.locator('.cbx-message')).toContainText('not a cellbox kernel', {
        timeout: 20000
      });
      await expect(panel.locator('.cbx-container')).toHaveCount(0);
      // Back on the cellbox notebook, its container is shown again.
      await page.notebook.activate('panel.ipynb');
      await expect(card.locator('.cbx-state-badge')).toHaveText('running');
    });
  });
});

// `galata` is imported for its side effects on `expect` (custom matchers).
void galata;
