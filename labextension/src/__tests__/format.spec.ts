import {
  formatBytes,
  formatClock,
  formatCpus,
  formatDuration,
  formatPercent,
  formatUsage,
  MISSING,
  shortDigest
} from '../format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 + 300, '10.3 KiB'],
    [64 * 1024 * 1024, '64 MiB'],
    [123.456 * 1024 * 1024, '123 MiB'],
    [1023.9 * 1024, '1 MiB'],
    [1.25 * 1024 ** 3, '1.25 GiB'],
    [3 * 1024 ** 4, '3 TiB']
  ])('%d bytes is %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it.each([[null], [undefined], [NaN], [Infinity], [-1]])('%p is shown as missing', value => {
    expect(formatBytes(value as number)).toBe(MISSING);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [45.9, '45s'],
    [60, '1m 00s'],
    [185, '3m 05s'],
    [3600, '1h 00m'],
    [2 * 3600 + 7 * 60 + 59, '2h 07m'],
    [3 * 86400 + 4 * 3600 + 5, '3d 4h']
  ])('%d seconds is %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it('keeps its width while the seconds tick', () => {
    expect(formatDuration(61).length).toBe(formatDuration(79).length);
  });

  it('refuses nonsense', () => {
    expect(formatDuration(-5)).toBe(MISSING);
    expect(formatDuration(null)).toBe(MISSING);
  });
});

describe('formatPercent', () => {
  it.each([
    [0, '0%'],
    [0.44, '0.4%'],
    [9.96, '10%'],
    [37.4, '37%'],
    [150.2, '150%']
  ])('%d is %s', (value, text) => {
    expect(formatPercent(value)).toBe(text);
  });
  it('shows a missing figure', () => {
    expect(formatPercent(null)).toBe(MISSING);
  });
});

describe('formatUsage and formatCpus', () => {
  it('shows used against the limit', () => {
    expect(formatUsage(12 * 1024 * 1024, 256 * 1024 * 1024)).toBe('12 MiB / 256 MiB');
    expect(formatUsage(12 * 1024 * 1024, null)).toBe('12 MiB');
    expect(formatUsage(7, 64, String)).toBe('7 / 64');
  });
  it('counts CPUs', () => {
    expect(formatCpus(0.5)).toBe('0.5 CPUs');
    expect(formatCpus(1)).toBe('1 CPU');
    expect(formatCpus(2)).toBe('2 CPUs');
    expect(formatCpus(null)).toBe(MISSING);
  });
});

describe('shortDigest', () => {
  it('cuts like docker history', () => {
    expect(shortDigest('sha256:0123456789abcdef0123')).toBe('0123456789ab');
    expect(shortDigest('abcdef')).toBe('abcdef');
    expect(shortDigest('')).toBe(MISSING);
    expect(shortDigest(null)).toBe(MISSING);
  });
});

describe('formatClock', () => {
  it('shows milliseconds and keeps a fixed width', () => {
    const text = formatClock(1700000000.042);
    expect(text).toMatch(/^\d\d:\d\d:\d\d\.042$/);
    expect(formatClock(undefined)).toBe(MISSING);
  });
});
