/** Overview: jobs per state, nodes up and down, and throughput and failure rate per minute as charts. */

import { overview } from "../api.js";
import { useLiveLoad, StatusBadge } from "./common.js";
import { JOB_STATES, clock } from "./format.js";
import LineChart from "./LineChart.js";

const { ref, computed } = window.Vue;

/** Minutes merged into one chart point, so an hour reads as 12 points of 5 minutes. */
const BUCKET = 5;

function bucketed(points) {
  const out = [];
  for (let i = 0; i < points.length; i += BUCKET) {
    const slice = points.slice(i, i + BUCKET);
    out.push({
      minute: slice[0].minute,
      completed: slice.reduce((sum, p) => sum + (p.completed || 0), 0),
      failed: slice.reduce((sum, p) => sum + (p.failed || 0), 0),
    });
  }
  return out;
}

export default {
  name: "OverviewView",
  components: { LineChart, StatusBadge },
  setup() {
    const data = ref(null);
    const { loadError } = useLiveLoad(async () => {
      data.value = await overview();
    });
    const counts = computed(() => JOB_STATES.map((state) => ({ state, count: data.value?.jobs_by_status?.[state] ?? 0 })));
    const points = computed(() => bucketed(data.value?.throughput || []));
    const labels = computed(() => points.value.map((p) => clock(p.minute)));
    const throughput = computed(() => [
      { name: "completed / 5 min", tone: "good", values: points.value.map((p) => p.completed) },
      { name: "failed / 5 min", tone: "bad", values: points.value.map((p) => p.failed) },
    ]);
    const failureRate = computed(() => [
      {
        name: "failure rate",
        tone: "bad",
        values: points.value.map((p) => (p.completed + p.failed ? (100 * p.failed) / (p.completed + p.failed) : null)),
      },
    ]);
    const nothingFinished = computed(() => !points.value.some((p) => p.completed + p.failed));
    const nodes = computed(() => data.value?.nodes || {});
    const nodesUp = computed(() => nodes.value.healthy ?? 0);
    const nodesDown = computed(() => nodes.value.unhealthy ?? 0);
    const nodesUnknown = computed(() => (nodes.value.total ?? 0) - nodesUp.value - nodesDown.value);
    return { data, loadError, counts, labels, throughput, failureRate, nothingFinished, nodes, nodesUp, nodesDown, nodesUnknown };
  },
  template: `
    <section aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <div class="tiles" data-testid="job-counts">
        <a v-for="c in counts" :key="c.state" class="tile" :href="'#/jobs?status=' + c.state" :data-state="c.state">
          <span class="tile-value">{{ c.count }}</span>
          <status-badge :state="c.state" />
        </a>
      </div>
      <div class="tiles" data-testid="node-counts">
        <a class="tile" href="#/nodes" data-count="nodes-total"><span class="tile-value">{{ nodes.total ?? 0 }}</span><status-badge state="" label="nodes" /></a>
        <a class="tile" href="#/nodes" data-count="nodes-up"><span class="tile-value">{{ nodesUp }}</span><status-badge state="up" label="nodes up" /></a>
        <a class="tile" href="#/nodes" data-count="nodes-down"><span class="tile-value">{{ nodesDown }}</span><status-badge state="down" label="nodes down" /></a>
        <a v-if="nodesUnknown" class="tile" href="#/nodes" data-count="nodes-unknown"><span class="tile-value">{{ nodesUnknown }}</span><status-badge state="unknown" label="not checked yet" /></a>
        <a class="tile" href="#/nodes" data-count="nodes-draining"><span class="tile-value">{{ nodes.draining ?? 0 }}</span><status-badge state="draining" label="draining" /></a>
        <a class="tile" href="#/nodes" data-count="nodes-disabled"><span class="tile-value">{{ nodes.disabled ?? 0 }}</span><status-badge state="disabled" label="disabled" /></a>
        <a class="tile" href="#/clients" data-count="clients"><span class="tile-value">{{ data?.clients ?? 0 }}</span><status-badge state="" label="clients" /></a>
      </div>
      <div class="charts">
        <line-chart title="Throughput (last hour)" :labels="labels" :series="throughput" :empty="nothingFinished" />
        <line-chart title="Failure rate (last hour)" :labels="labels" :series="failureRate" unit=" %" :fixed-max="100"
                    :empty="nothingFinished" />
      </div>
    </section>`,
};
