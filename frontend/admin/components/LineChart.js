/** A small SVG line chart: one line per series over shared x labels, with a legend and a y scale. */

const { computed } = window.Vue;

const WIDTH = 600;
const HEIGHT = 180;
// Room on the left for a y label such as "100 %".
const PAD = { left: 48, right: 8, top: 10, bottom: 22 };

export default {
  name: "LineChart",
  props: {
    title: { type: String, required: true },
    labels: { type: Array, default: () => [] },
    /** [{ name, values: [number], tone: "good" | "bad" | "busy" }] */
    series: { type: Array, default: () => [] },
    unit: { type: String, default: "" },
    fixedMax: { type: Number, default: 0 },
    /** The parent's word on whether the window holds anything; default: no series has a non-zero value. */
    empty: { type: Boolean, default: null },
  },
  setup(props) {
    const max = computed(() => {
      const values = props.series.flatMap((s) => s.values).filter((v) => v !== null);
      return props.fixedMax || Math.max(1, ...values);
    });
    const x = (i) => {
      const n = Math.max(props.labels.length - 1, 1);
      return PAD.left + (i / n) * (WIDTH - PAD.left - PAD.right);
    };
    const y = (v) => HEIGHT - PAD.bottom - (v / max.value) * (HEIGHT - PAD.top - PAD.bottom);
    const known = (values) => values.map((v, i) => (v === null ? null : { i, x: x(i), y: y(v), v })).filter(Boolean);
    const points = (values) => known(values).map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    const ticks = computed(() => {
      const n = props.labels.length;
      return n ? [0, Math.floor((n - 1) / 2), n - 1].map((i) => ({ x: x(i), text: props.labels[i] })) : [];
    });
    // A 0 % failure rate is data, not emptiness: the parent, which knows, may say so.
    const nothing = computed(() => props.empty ?? !props.series.some((s) => s.values.some((v) => v)));
    return { WIDTH, HEIGHT, PAD, max, y, known, points, ticks, nothing };
  },
  template: `
    <figure class="chart" :aria-label="title">
      <figcaption>{{ title }}<span v-if="nothing" class="muted"> · nothing finished in this window</span></figcaption>
      <svg :viewBox="'0 0 ' + WIDTH + ' ' + HEIGHT" role="img">
        <line class="axis" :x1="PAD.left" :x2="WIDTH - PAD.right" :y1="y(0)" :y2="y(0)" />
        <line class="grid" :x1="PAD.left" :x2="WIDTH - PAD.right" :y1="y(max)" :y2="y(max)" />
        <text class="tick" :x="PAD.left - 4" :y="y(max) + 4" text-anchor="end">{{ +max.toFixed(2) }}{{ unit }}</text>
        <text class="tick" :x="PAD.left - 4" :y="y(0) + 4" text-anchor="end">0</text>
        <text v-for="t in ticks" :key="t.x" class="tick" :x="t.x" :y="HEIGHT - 6" text-anchor="middle">{{ t.text }}</text>
        <g v-for="s in series" :key="s.name" :data-series="s.name">
          <polyline class="line" :class="s.tone" :points="points(s.values)" />
          <!-- A dot per known value: a series with one value (one busy 5 minutes) has no line to draw. -->
          <circle v-for="p in known(s.values)" :key="p.i" class="dot" :class="s.tone" :cx="p.x" :cy="p.y" r="3" :data-value="p.v">
            <title>{{ labels[p.i] }}: {{ +p.v.toFixed(2) }}{{ unit }}</title>
          </circle>
        </g>
      </svg>
      <ul class="legend">
        <li v-for="s in series" :key="s.name"><span class="swatch" :class="s.tone"></span>{{ s.name }}</li>
      </ul>
    </figure>`,
};
