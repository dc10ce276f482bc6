import { ILogRecord, isEmptyFilter, LogBuffer, matches, parseFilter } from '../logfilter';

function rec(line: string, stream = 'stdout', cell: number | null = null): ILogRecord {
  return { t: 0, stream, line, cell };
}

describe('parseFilter', () => {
  it('reads words, exclusions, phrases and fields', () => {
    const f = parseFilter('Error -debug "disk full" stream:stderr cell:3');
    expect(f.include).toEqual(['error', 'disk full']);
    expect(f.exclude).toEqual(['debug']);
    expect(f.stream).toBe('stderr');
    expect(f.cell).toBe(3);
  });
  it('takes is:stdout as a stream', () => {
    expect(parseFilter('is:stdout').stream).toBe('stdout');
  });
  it('treats fields it does not know as words', () => {
    const f = parseFilter('stream:video cell:x url:http');
    expect(f.stream).toBeNull();
    expect(f.cell).toBeNull();
    expect(f.include).toEqual(['stream:video', 'cell:x', 'url:http']);
  });
  it('is empty for blank text', () => {
    expect(isEmptyFilter(parseFilter('   '))).toBe(true);
    expect(isEmptyFilter(parseFilter('""'))).toBe(true);
  });
  it('never throws on odd input', () => {
    expect(() => parseFilter('"unclosed -" - -- ((( [')).not.toThrow();
  });
});

describe('matches', () => {
  it('is case-insensitive and needs every word', () => {
    const f = parseFilter('hello WORLD');
    expect(matches(rec('Hello, world!'), f)).toBe(true);
    expect(matches(rec('hello there'), f)).toBe(false);
  });
  it('excludes', () => {
    const f = parseFilter('-debug');
    expect(matches(rec('DEBUG: x'), f)).toBe(false);
    expect(matches(rec('info: x'), f)).toBe(true);
  });
  it('tells the streams apart', () => {
    const f = parseFilter('stream:stderr');
    expect(matches(rec('oops', 'stderr'), f)).toBe(true);
    expect(matches(rec('fine', 'stdout'), f)).toBe(false);
    // A stream the panel does not know is shown (and filtered) as stdout.
    expect(matches(rec('x', 'weird'), parseFilter('stream:stdout'))).toBe(true);
  });
  it('picks a cell', () => {
    const f = parseFilter('cell:2');
    expect(matches(rec('a', 'stdout', 2), f)).toBe(true);
    expect(matches(rec('a', 'stdout', 3), f)).toBe(false);
    expect(matches(rec('a', 'stdout', null), f)).toBe(false);
  });
});

describe('LogBuffer', () => {
  it('keeps the last lines only and counts the rest', () => {
    const buffer = new LogBuffer(3);
    buffer.append([rec('1'), rec('2')]);
    buffer.append([rec('3'), rec('4'), rec('5')], 10);
    expect(buffer.all().map(r => r.line)).toEqual(['3', '4', '5']);
    expect(buffer.dropped).toBe(12);
  });
  it('filters what it holds', () => {
    const buffer = new LogBuffer(10);
    buffer.append([rec('apple'), rec('banana', 'stderr'), rec('apricot')]);
    expect(buffer.filtered(parseFilter('ap')).map(r => r.line)).toEqual(['apple', 'apricot']);
    expect(buffer.filtered(parseFilter('is:stderr')).map(r => r.line)).toEqual(['banana']);
    expect(buffer.filtered(parseFilter('')).length).toBe(3);
  });
  it('stays bounded under a flood', () => {
    const buffer = new LogBuffer(2000);
    for (let i = 0; i < 50000; i++) {
      buffer.append([rec(`line ${i}`)]);
    }
    expect(buffer.length).toBe(2000);
    expect(buffer.all()[0].line).toBe('line 48000');
  });
});
