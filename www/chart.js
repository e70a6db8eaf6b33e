// A small live line chart: one line per series on a <canvas>, both axes scaled to the
// data, and an HTML legend beside it (so the last values stay readable, selectable text).
// Pushes only mark the chart dirty; drawing happens once per animation frame.

import { el } from "./dom.js";

const PALETTE = ["#4f46e5", "#e11d48", "#059669", "#d97706", "#0891b2", "#9333ea", "#64748b"];
const FONT = "11px system-ui, sans-serif";
const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];

export class LineChart {
  #canvas;
  #legend;
  #maxPoints;
  #format;
  #declared;
  #zero;
  #series = new Map();
  #frame = 0;

  /**
   * `series`: optional `[{ key, label }]` declared up front, so each key keeps its colour
   * whatever order data arrives in. `format` renders a value for the legend and the axis.
   * `zero`: keep 0 on the value axis (counts read wrong on a zoomed-in axis).
   */
  constructor(canvas, legend, { series = [], maxPoints = 120, format = String, zero = false } = {}) {
    this.#canvas = canvas;
    this.#legend = legend;
    this.#maxPoints = maxPoints;
    this.#format = format;
    this.#declared = series;
    this.#zero = zero;
    // Hidden views have no size: redraw when the canvas appears or the layout changes.
    new ResizeObserver(() => this.#schedule()).observe(canvas);
  }

  get keys() {
    return [...this.#series.keys()];
  }

  push(key, time, value) {
    if (!Number.isFinite(value) || !Number.isFinite(time)) return;
    const series = this.#series.get(key) ?? this.#add(key);
    series.points.push({ t: time, v: value });
    if (series.points.length > this.#maxPoints) series.points.shift();
    series.value.textContent = this.#format(value);
    this.#schedule();
  }

  remove(key) {
    this.#series.get(key)?.item.remove();
    this.#series.delete(key);
    this.#schedule();
  }

  #add(key) {
    const index = this.#declared.findIndex((s) => s.key === key);
    const label = this.#declared[index]?.label ?? key;
    const color = PALETTE[(index >= 0 ? index : this.#declared.length + this.#series.size) % PALETTE.length];
    const swatch = el("span", { class: "swatch", style: `background:${color}` });
    const value = el("span", { class: "value" });
    const item = el("li", { class: "series", data: { key } }, swatch, el("span", { class: "label", text: label }), value);
    const series = { key, color, points: [], item, value };
    this.#series.set(key, series);
    // Legend entries stay in declaration order, undeclared keys after them.
    const order = (k) => { const i = this.#declared.findIndex((s) => s.key === k); return i < 0 ? Infinity : i; };
    const next = [...this.#legend.children].find((node) => order(node.dataset.key) > order(key));
    this.#legend.insertBefore(item, next ?? null);
    return series;
  }

  #schedule() {
    this.#frame ||= requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #draw() {
    const canvas = this.#canvas;
    const { clientWidth: width, clientHeight: height } = canvas;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const series = [...this.#series.values()].filter((s) => s.points.length);
    const points = series.flatMap((s) => s.points);
    if (!points.length) return;

    const style = getComputedStyle(canvas);
    const ink = style.color;
    const grid = style.getPropertyValue("--chart-grid").trim() || "rgba(128,128,128,.2)";
    ctx.font = FONT;

    const values = points.map((p) => p.v);
    const y = niceScale(Math.min(...values, ...(this.#zero ? [0] : [])), Math.max(...values), values.every(Number.isInteger));
    const yLabels = y.ticks.map((v) => this.#format(v));
    const left = Math.ceil(Math.max(...yLabels.map((l) => ctx.measureText(l).width))) + 10;
    const box = { left, right: width - 8, top: 8, bottom: height - 20 };

    const t1 = Math.max(...points.map((p) => p.t));
    let t0 = Math.min(...points.map((p) => p.t));
    if (t1 - t0 < 1000) t0 = t1 - 1000;
    const xOf = (t) => box.left + ((t - t0) / (t1 - t0)) * (box.right - box.left);
    const yOf = (v) => box.bottom - ((v - y.lo) / (y.hi - y.lo)) * (box.bottom - box.top);

    drawGrid(ctx, { box, grid, ink, y, yLabels, yOf, xOf, t0, t1 });
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const s of series) drawLine(ctx, s, xOf, yOf);
  }
}

function drawGrid(ctx, { box, grid, ink, y, yLabels, yOf, xOf, t0, t1 }) {
  ctx.strokeStyle = grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = ink;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  y.ticks.forEach((v, i) => {
    const py = Math.round(yOf(v)) + 0.5;
    line(ctx, box.left, py, box.right, py);
    ctx.fillText(yLabels[i], box.left - 6, py);
  });
  ctx.textBaseline = "top";
  ctx.textAlign = "center";
  const maxTicks = Math.max(2, Math.floor((box.right - box.left) / 80));
  const step = 1000 * (TIME_STEPS_S.find((s) => (t1 - t0) / (s * 1000) <= maxTicks) ?? 3600);
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const px = Math.round(xOf(t)) + 0.5;
    line(ctx, px, box.top, px, box.bottom);
    const label = new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const half = ctx.measureText(label).width / 2;
    ctx.fillText(label, Math.min(Math.max(px, box.left + half), box.right - half), box.bottom + 5);
  }
}

function drawLine(ctx, series, xOf, yOf) {
  ctx.strokeStyle = ctx.fillStyle = series.color;
  const [first, ...rest] = series.points;
  if (!rest.length) {
    ctx.beginPath();
    ctx.arc(xOf(first.t), yOf(first.v), 2.5, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(xOf(first.t), yOf(first.v));
  for (const p of rest) ctx.lineTo(xOf(p.t), yOf(p.v));
  ctx.stroke();
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

/**
 * Round bounds and about four evenly spaced ticks (steps of 1, 2, 2.5 or 5 × 10^n).
 * Counts (`integral`) get whole-number ticks only.
 */
function niceScale(min, max, integral) {
  if (max - min < 1e-9) {
    // A flat line sits mid-chart; a flat zero stays on the bottom edge.
    const pad = Math.abs(min) * 0.01 || 1;
    if (min !== 0) min -= pad;
    max += pad;
  }
  const raw = (max - min) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const steps = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).filter((s) => !integral || Number.isInteger(s));
  const step = steps.find((s) => s >= raw) ?? 1;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let i = 0; lo + i * step <= hi + step / 2; i++) ticks.push(+(lo + i * step).toPrecision(12));
  return { lo, hi, ticks };
}
