/** One node's recent health checks: a strip of ok/failed marks and a table with latency and errors. */

import { nodes } from "../api.js";
import { useLiveLoad, StatusBadge } from "./common.js";
import { time } from "./format.js";

const { ref } = window.Vue;

export default {
  name: "NodeHistory",
  components: { StatusBadge },
  props: { nodeId: { type: String, required: true } },
  setup(props) {
    const checks = ref([]);
    const { loadError, loaded } = useLiveLoad(async () => {
      checks.value = (await nodes.health(props.nodeId)).checks || [];
    });
    return { checks, loadError, loaded, time };
  },
  template: `
    <div class="history" :data-history="nodeId">
      <p v-if="loadError" class="message error">{{ loadError }}</p>
      <p v-else-if="loaded && !checks.length" class="muted">No health checks recorded yet.</p>
      <div v-if="checks.length" class="strip" aria-label="health checks, newest first">
        <span v-for="(c, i) in checks" :key="i" class="mark" :class="c.ok ? 'good' : 'bad'"
              :title="time(c.at) + (c.error ? ': ' + c.error : '')"></span>
      </div>
      <div class="table-wrap" v-if="checks.length">
        <table class="compact">
          <thead><tr><th>At</th><th>Result</th><th>Latency</th><th>Error</th></tr></thead>
          <tbody><tr v-for="(c, i) in checks.slice(0, 10)" :key="i">
            <td>{{ time(c.at) }}</td>
            <td><status-badge :state="c.ok ? 'ok' : 'failed'" /></td>
            <td class="num">{{ c.latency_ms == null ? "—" : c.latency_ms.toFixed(0) + " ms" }}</td>
            <td>{{ c.error || "" }}</td>
          </tr></tbody>
        </table>
      </div>
    </div>`,
};
