import { areaOf, CHART_HEIGHT } from '../chart';

describe('areaOf', () => {
  it('closes each segment of a line down to the bottom', () => {
    expect(areaOf('')).toBe('');
    expect(areaOf('M0 10 L50 5 L100 0')).toBe(
      `M0 10 L50 5 L100 0 L100 ${CHART_HEIGHT} L0 ${CHART_HEIGHT} Z`
    );
    const two = areaOf('M0 1 L10 2 M50 3');
    expect(two.match(/Z/g)!.length).toBe(2);
    expect(two).toContain(`M50 3 L50 ${CHART_HEIGHT} L50 ${CHART_HEIGHT} Z`);
  });
});
