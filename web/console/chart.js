// Charts: one uPlot chart per metric, fed the last hour from the metrics API and then the
// stream. uPlot is the vendored global (web/vendor/).

import { h } from "./dom.js";

export const WINDOW_MS = 60 * 60 * 1000;

export class Charts {
  constructor(root) { this.root = root; this.series = new Map(); }

  add(points) {
    const touched = new Set();
    for (const p of points) {
      let s = this.series.get(p.metric);
      if (!s) {
        s = { xs: [], ys: [], unit: p.unit, plot: null, box: null, count: null };
        this.series.set(p.metric, s);
      }
      const t = Date.parse(p.time) / 1000;
      // Keep time order (the stream can deliver a late reading).
      let i = s.xs.length;
      while (i > 0 && s.xs[i - 1] > t) i--;
      s.xs.splice(i, 0, t);
      s.ys.splice(i, 0, p.value);
      touched.add(p.metric);
    }
    const cutoff = (Date.now() - WINDOW_MS) / 1000;
    for (const metric of touched) {
      const s = this.series.get(metric);
      let drop = 0;
      while (drop < s.xs.length - 1 && s.xs[drop] < cutoff) drop++;
      if (drop) { s.xs.splice(0, drop); s.ys.splice(0, drop); }
      this.draw(metric, s);
    }
  }

  draw(metric, s) {
    if (!s.box) {
      s.count = h("span", { class: "muted points" }, "");
      s.box = h("div", { class: "card chart", dataset: { metric } },
        h("h3", {}, metric, s.unit ? ` (${s.unit})` : "", " ", s.count),
        h("div", { class: "plot" }));
      this.root.append(s.box);
      const width = Math.max(240, s.box.clientWidth - 28);
      s.plot = new uPlot({
        width, height: 180,
        // Points while there are too few for a line.
        series: [{}, { label: metric, stroke: "#1f6feb", width: 1.5,
                       points: { show: (u) => u.data[0].length < 3, size: 6 } }],
        axes: [{}, { size: 56 }],
        legend: { show: false },
      }, [s.xs, s.ys], s.box.querySelector(".plot"));
    } else {
      s.plot.setData([s.xs, s.ys]);
    }
    // At least the last hour up to now: a series of one point (a device's hello numbers) spans
    // no time, and uPlot would make up a range of years.
    const now = Date.now() / 1000;
    s.plot.setScale("x", { min: Math.min(s.xs[0], now - 3600), max: Math.max(s.xs[s.xs.length - 1], now) });
    s.count.textContent = `${s.xs.length} points`;
    s.box.dataset.points = String(s.xs.length);
  }

  resize() {
    for (const s of this.series.values()) {
      if (s.plot) s.plot.setSize({ width: Math.max(240, s.box.clientWidth - 28), height: 180 });
    }
  }
}
