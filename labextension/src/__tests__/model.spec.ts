import { describeLimits, describeState } from '../card';
import { oomMarks, PanelModel } from '../model';
import { IContainerInfo, parseContainer, parseKernelMessage, PROTOCOL_VERSION } from '../protocol';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function container(id: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    name: `c-${id[0]}`,
    image: 'docker.io/library/busybox:latest',
    image_digest: 'sha256:' + '1'.repeat(64),
    state: 'running',
    exit_code: null,
    oom_killed: false,
    started_at: 1000,
    limits: { memory: 64 << 20, memory_swap: null, cpus: 0.5, pids: 64 },
    layers: [
      { created: null, created_by: 'CMD ["sh"]', size: 0, digest: null, empty_layer: true },
      { created_by: 'COPY rootfs /', size: 1234, digest: 'sha256:' + 'f'.repeat(64) }
    ],
    upper: { size: 4096, files: 2 },
    ...extra
  };
}

function sample(t: number, mem: number, oom = 0) {
  return { t, cpu: 1, mem, mem_limit: 64 << 20, pids: 1, pids_limit: 64, oom_kills: oom };
}

function snapshot(extra: Record<string, unknown> = {}) {
  return {
    version: PROTOCOL_VERSION,
    type: 'snapshot',
    kernel: { host_cpus: 2, interval: 1, history: 300 },
    current: B,
    containers: [container(A), container(B)],
    usage: { [A]: [sample(1, 10), sample(2, 20)] },
    logs: {
      [B]: { records: [{ t: 1, stream: 'stderr', line: 'boom', cell: 4 }], skipped: 7 }
    },
    ...extra
  };
}

describe('PanelModel', () => {
  it('builds its state from a snapshot, current container first', () => {
    const model = new PanelModel();
    expect(model.apply(snapshot())).toBe('all');
    expect(model.containers().map(c => c.id)).toEqual([B, A]);
    expect(model.kernel.host_cpus).toBe(2);
    expect(model.get(A)!.samples.toArray().map(s => s.mem)).toEqual([10, 20]);
    const logs = model.get(B)!.logs;
    expect(logs.all()[0]).toEqual({ t: 1, stream: 'stderr', line: 'boom', cell: 4 });
    expect(logs.dropped).toBe(7);
    expect(model.get(A)!.info.layers[1].digest).toBe('sha256:' + 'f'.repeat(64));
    expect(model.get(A)!.info.layers[0].empty_layer).toBe(true);
  });

  it('adds samples and log lines as they are pushed, in order only', () => {
    const model = new PanelModel();
    model.apply(snapshot());
    model.apply({ version: 1, type: 'usage', samples: { [A]: sample(3, 30), [B]: sample(3, 5) } });
    model.apply({ version: 1, type: 'usage', samples: { [A]: sample(2.5, 99) } });
    expect(model.get(A)!.samples.toArray().map(s => s.mem)).toEqual([10, 20, 30]);
    model.apply({
      version: 1,
      type: 'logs',
      container: A,
      records: [{ t: 5, stream: 'stdout', line: 'hi', cell: 1 }],
      skipped: 0
    });
    expect(model.get(A)!.logs.all().map(r => r.line)).toEqual(['hi']);
  });

  it('follows the container list: new current, removed containers forgotten', () => {
    const model = new PanelModel();
    model.apply(snapshot());
    model.apply({ version: 1, type: 'containers', current: A, containers: [container(A)] });
    expect(model.containers().map(c => c.id)).toEqual([A]);
    expect(model.get(B)).toBeUndefined();
    // Samples survive a containers message for a container that stays.
    expect(model.get(A)!.samples.length).toBe(2);
  });

  it('drops what does not fit the protocol', () => {
    const model = new PanelModel();
    const seen: string[] = [];
    model.subscribe(change => seen.push(change));
    expect(model.apply(null)).toBeNull();
    expect(model.apply('snapshot')).toBeNull();
    expect(model.apply({ version: 1, type: 'nonsense' })).toBeNull();
    expect(model.apply({ version: 1, type: 'logs', container: '../../etc', records: [] })).toBeNull();
    expect(seen).toEqual([]);
  });

  it('says so when the kernel speaks another protocol version', () => {
    const model = new PanelModel();
    expect(model.apply({ ...snapshot(), version: 2 })).toBe('error');
    expect(model.error).toMatch(/protocol 2/);
  });

  it('ignores hostile or malformed fields instead of trusting them', () => {
    const bad = snapshot({
      containers: [
        container(A, { limits: { memory: 'lots', cpus: -1 }, layers: 'nope', upper: null }),
        { id: '<img src=x onerror=alert(1)>' },
        container(A)
      ],
      usage: { [A]: [{ t: 'x' }, sample(1, -5)] }
    });
    const model = new PanelModel();
    model.apply(bad);
    expect(model.containers().map(c => c.id)).toEqual([A]);
    const info = model.get(A)!.info;
    expect(info.limits.memory).toBeNull();
    expect(info.limits.cpus).toBeNull();
    expect(info.layers).toEqual([]);
    expect(info.upper.size).toBeNull();
    expect(model.get(A)!.samples.toArray()[0].mem).toBeNull();
  });

  it('keeps a bounded history per container', () => {
    const model = new PanelModel(5, 3);
    model.apply(snapshot());
    for (let t = 10; t < 100; t++) {
      model.apply({ version: 1, type: 'usage', samples: { [A]: sample(t, t) } });
    }
    expect(model.get(A)!.samples.length).toBe(5);
  });
});

describe('oomMarks', () => {
  it('marks where the OOM counter rose, not where it was reset', () => {
    const marks = oomMarks([
      sample(1, 0, 0),
      sample(2, 0, 1),
      sample(3, 0, 1),
      sample(4, 0, 3),
      sample(5, 0, 0),
      sample(6, 0, 0)
    ]);
    expect(marks).toEqual([2, 4]);
  });
});

describe('parseKernelMessage', () => {
  it('keeps only known streams and integer cells in log records', () => {
    const msg = parseKernelMessage({
      version: 1,
      type: 'logs',
      container: A,
      records: [
        { t: 1, stream: 'evil', line: 'x', cell: 1.5 },
        { t: 1, stream: 'stderr', line: 42 }
      ]
    });
    expect(msg).toEqual({
      version: 1,
      type: 'logs',
      container: A,
      records: [{ t: 1, stream: 'stdout', line: 'x', cell: null }],
      skipped: 0
    });
  });
});

describe('card texts', () => {
  // card.ts builds DOM only when a card is made; its text helpers are pure.
  const info = (extra: Record<string, unknown>): IContainerInfo =>
    parseContainer(container(A, extra))!;

  it('says how a container ended', () => {
    expect(describeState(info({ state: 'exited', exit_code: 137, oom_killed: true }))).toBe(
      'exited (137, OOM-killed)'
    );
    expect(describeState(info({ state: 'running' }))).toBe('running');
  });

  it('lists limits, or none', () => {
    expect(describeLimits(info({}))).toBe('64 MiB memory · 0.5 CPUs · 64 pids');
    expect(
      describeLimits(info({ limits: { memory: null, memory_swap: null, cpus: null, pids: null } }))
    ).toBe('none');
    expect(
      describeLimits(
        info({ limits: { memory: 64 << 20, memory_swap: 96 << 20, cpus: null, pids: null } })
      )
    ).toBe('64 MiB memory · 32 MiB swap');
  });
});
