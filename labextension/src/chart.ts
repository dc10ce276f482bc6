/**
 * A small live line chart in SVG: one series over a sliding time window, a dashed limit
 * line, and red marks (OOM kills). It is redrawn in place each second: the SVG keeps its
 * size, so nothing around it moves. Colours come from JupyterLab's CSS variables (see
 * style/base.css), so it follows the light and dark themes with no code.
 *
 * The figures it shows are also on the element as data attributes (data-latest,
 * data-max, data-oom-marks): the browser tests read them, and so can a screen reader's
 * user through the text legend next to the chart.
 */

import { IFrame, IPoint, linePath, ticks, xOf, yOf } from './scale';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The drawing box in SVG user units; CSS stretches it to the panel's width. */
export const CHART_WIDTH = 300;
export const CHART_HEIGHT = 60;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {}
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, value);
  }
  return el;
}

export interface IChartData {
  points: IPoint[];
  frame: Omit<IFrame, 'width' | 'height'>;
  /** The limit to draw as a dashed line, if any. */
  limit: number | null;
  /** Times of OOM kills to mark. */
  marks: number[];
  /** Text for each mark's tooltip. */
  markLabel: (t: number) => string;
}

export class LineChart {
  readonly node: SVGSVGElement;
  private readonly grid: SVGGElement;
  private readonly limitLine: SVGLineElement;
  private readonly area: SVGPathElement;
  private readonly line: SVGPathElement;
  private readonly markLayer: SVGGElement;

  constructor(kind: string, label: string) {
    this.node = svg('svg', {
      class: `cbx-chart cbx-chart-${kind}`,
      viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': label
    });
    this.node.appendChild(
      svg('rect', {
        class: 'cbx-chart-bg',
        x: '0',
        y: '0',
        width: `${CHART_WIDTH}`,
        height: `${CHART_HEIGHT}`
      })
    );
    this.grid = svg('g', { class: 'cbx-chart-grid' });
    this.area = svg('path', { class: 'cbx-chart-area' });
    this.line = svg('path', { class: 'cbx-chart-line' });
    this.limitLine = svg('line', { class: 'cbx-chart-limit' });
    this.markLayer = svg('g', { class: 'cbx-chart-marks' });
    for (const child of [this.grid, this.area, this.line, this.limitLine, this.markLayer]) {
      this.node.appendChild(child);
    }
    // Lines keep their width however CSS stretches the box.
    for (const el of [this.line, this.limitLine]) {
      el.setAttribute('vector-effect', 'non-scaling-stroke');
    }
  }

  update(data: IChartData): void {
    const frame: IFrame = { ...data.frame, width: CHART_WIDTH, height: CHART_HEIGHT };
    this.drawGrid(frame);
    const path = linePath(data.points, frame);
    this.line.setAttribute('d', path);
    this.area.setAttribute('d', areaOf(path));
    if (data.limit !== null && data.limit > 0 && data.limit <= frame.max) {
      const y = `${yOf(data.limit, frame)}`;
      this.setLine(this.limitLine, '0', y, `${CHART_WIDTH}`, y);
      this.limitLine.style.display = '';
    } else {
      this.limitLine.style.display = 'none';
    }
    this.drawMarks(data.marks, frame, data.markLabel);
    const latest = lastValue(data.points);
    this.node.dataset.latest = latest === null ? '' : `${latest}`;
    this.node.dataset.max = `${frame.max}`;
    this.node.dataset.points = `${data.points.length}`;
    this.node.dataset.oomMarks = `${data.marks.length}`;
  }

  private drawGrid(frame: IFrame): void {
    // Three horizontal lines at a quarter, half and three quarters of the axis.
    const values = ticks(frame.max, 4).slice(1, -1);
    while (this.grid.childNodes.length < values.length) {
      this.grid.appendChild(svg('line', { 'vector-effect': 'non-scaling-stroke' }));
    }
    values.forEach((v, i) => {
      const y = `${yOf(v, frame)}`;
      this.setLine(this.grid.childNodes[i] as SVGLineElement, '0', y, `${CHART_WIDTH}`, y);
    });
  }

  private drawMarks(marks: number[], frame: IFrame, label: (t: number) => string): void {
    const visible = marks.filter(t => t >= frame.now - frame.window && t <= frame.now);
    while (this.markLayer.childNodes.length > visible.length) {
      this.markLayer.removeChild(this.markLayer.lastChild!);
    }
    while (this.markLayer.childNodes.length < visible.length) {
      const mark = svg('line', { class: 'cbx-oom-mark', 'vector-effect': 'non-scaling-stroke' });
      mark.appendChild(svg('title'));
      this.markLayer.appendChild(mark);
    }
    visible.forEach((t, i) => {
      const mark = this.markLayer.childNodes[i] as SVGLineElement;
      const x = `${xOf(t, frame)}`;
      this.setLine(mark, x, '0', x, `${CHART_HEIGHT}`);
      mark.dataset.t = `${t}`;
      mark.firstChild!.textContent = label(t);
    });
  }

  private setLine(el: SVGLineElement, x1: string, y1: string, x2: string, y2: string): void {
    el.setAttribute('x1', x1);
    el.setAttribute('y1', y1);
    el.setAttribute('x2', x2);
    el.setAttribute('y2', y2);
  }
}

/** The newest non-null value. */
function lastValue(points: IPoint[]): number | null {
  for (let i = points.length - 1; i >= 0; i--) {
    if (points[i].v !== null) {
      return points[i].v;
    }
  }
  return null;
}

/** A filled area under each segment of a line path. */
export function areaOf(path: string): string {
  if (path === '') {
    return '';
  }
  return path
    .split(/(?=M)/)
    .map(segment => {
      const coords: string[] = segment.trim().match(/-?[\d.]+ -?[\d.]+/g) ?? [];
      const first = coords[0];
      const last = coords[coords.length - 1];
      if (first === undefined || last === undefined) {
        return '';
      }
      const firstX = first.split(' ')[0];
      const lastX = last.split(' ')[0];
      return `${segment.trim()} L${lastX} ${CHART_HEIGHT} L${firstX} ${CHART_HEIGHT} Z`;
    })
    .join(' ');
}
