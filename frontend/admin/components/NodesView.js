/** Nodes: health, load, queue, VRAM, checkpoints and check history; add, drain, disable, remove; strategies. */

import { nodes as nodesApi, tasks, nodePerformance } from "../api.js";
import { useLiveLoad, useFeedback, StatusBadge, Feedback } from "./common.js";
import { ago, bytes, seconds, percent } from "./format.js";
import NodeForm from "./NodeForm.js";
import NodeHistory from "./NodeHistory.js";
import StrategyPicker from "./StrategyPicker.js";

const { ref, reactive, computed, inject, watch } = window.Vue;

/** Jobs running per node, for nodes whose row does not carry its own in-flight count. */
async function runningByNode() {
  const page = await tasks.list({ status: "running", limit: 500 });
  const counts = {};
  for (const task of page.items || []) if (task.node_id) counts[task.node_id] = (counts[task.node_id] || 0) + 1;
  return counts;
}

export default {
  name: "NodesView",
  components: { StatusBadge, Feedback, NodeForm, NodeHistory, StrategyPicker },
  setup() {
    const rows = ref([]);
    const running = ref({});
    const record = ref({});
    const open = ref(null);
    const confirming = ref(null);
    const { loadError, reload } = useLiveLoad(async () => {
      const [list, counts, stats] = await Promise.all([
        nodesApi.list(),
        runningByNode().catch(() => ({})),
        nodePerformance().catch(() => []),
      ]);
      rows.value = Array.isArray(list) ? list : list.items || [];
      running.value = counts;
      record.value = Object.fromEntries(stats.map((s) => [s.key, s]));
    });
    // The health monitor announces {type: "node", node_id, status}: show it now; the reload brings the rest.
    watch(inject("lastEvent", ref(null)), (event) => {
      if (event?.type !== "node") return;
      const row = rows.value.find((n) => n.node_id === event.node_id);
      if (row) row.status = event.status;
    });
    const feedback = reactive(useFeedback());
    const groups = computed(() => [...new Set(["default", ...rows.value.map((n) => n.group)])].sort());
    const inFlight = (node) => node.in_flight ?? running.value[node.node_id] ?? 0;
    const act = async (node, action) => {
      await feedback.run(() => nodesApi.act(node.node_id, action), `${node.node_id}: ${action} done.`);
      await reload();
    };
    const remove = async (node) => {
      if (confirming.value !== node.node_id) {
        confirming.value = node.node_id;
        return;
      }
      confirming.value = null;
      await feedback.run(() => nodesApi.remove(node.node_id), `${node.node_id} removed.`);
      await reload();
    };
    const toggle = (node) => (open.value = open.value === node.node_id ? null : node.node_id);
    return {
      rows, groups, open, confirming, record, loadError, reload, feedback, inFlight, act, remove, toggle,
      ago, bytes, seconds, percent,
    };
  },
  template: `
    <section aria-labelledby="nodes-title">
      <h2 id="nodes-title">Nodes</h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <feedback :error="feedback.error" :notice="feedback.notice" />
      <strategy-picker :groups="groups" />
      <div class="table-wrap">
        <table class="cards" data-testid="nodes-table">
          <thead><tr>
            <th>Node</th><th>Group</th><th>Health</th><th>Load</th><th>Queue</th><th>VRAM free</th>
            <th>Checkpoints</th><th>Attempts</th><th>Last seen</th><th>Actions</th>
          </tr></thead>
          <tbody>
            <template v-for="n in rows" :key="n.node_id">
              <tr :data-node="n.node_id">
                <td data-label="Node"><strong>{{ n.node_id }}</strong><br><small class="muted">{{ n.base_url }}</small></td>
                <td data-label="Group">{{ n.group }}</td>
                <td data-label="Health">
                  <status-badge :state="n.status" />
                  <status-badge v-if="n.draining" state="draining" />
                  <status-badge v-if="!n.enabled" state="disabled" />
                  <small v-if="n.last_error" class="muted block">{{ n.last_error }}</small>
                </td>
                <td data-label="Load" class="num" data-field="load">{{ inFlight(n) }} / {{ n.max_concurrent }}</td>
                <td data-label="Queue" class="num">{{ n.queue_depth }}</td>
                <td data-label="VRAM free" class="num">{{ n.vram_total ? bytes(n.vram_free) + " / " + bytes(n.vram_total) : "—" }}</td>
                <td data-label="Checkpoints">
                  <details v-if="n.checkpoints && n.checkpoints.length"><summary>{{ n.checkpoints.length }}</summary>
                    <ul class="plain"><li v-for="c in n.checkpoints" :key="c">{{ c }}</li></ul>
                  </details><span v-else class="muted">none</span>
                </td>
                <td data-label="Attempts">
                  <template v-if="record[n.node_id]">{{ record[n.node_id].total }} · {{ percent(record[n.node_id].failure_rate) }} failed
                    <small class="muted block nowrap">mean {{ seconds(record[n.node_id].mean_seconds) }}, p95 {{ seconds(record[n.node_id].p95_seconds) }}</small>
                  </template><span v-else class="muted">none yet</span>
                </td>
                <td data-label="Last seen">{{ ago(n.last_seen_at || n.last_check_at) }}</td>
                <td data-label="Actions" class="actions">
                  <button v-if="!n.draining" @click="act(n, 'drain')">Drain</button>
                  <button v-else @click="act(n, 'undrain')">Undrain</button>
                  <button v-if="n.enabled" @click="act(n, 'disable')">Disable</button>
                  <button v-else @click="act(n, 'enable')">Enable</button>
                  <button class="secondary" @click="toggle(n)" :aria-expanded="open === n.node_id">History</button>
                  <button class="danger" @click="remove(n)">{{ confirming === n.node_id ? "Confirm remove" : "Remove" }}</button>
                </td>
              </tr>
              <tr v-if="open === n.node_id" class="detail-row"><td colspan="10"><node-history :node-id="n.node_id" /></td></tr>
            </template>
            <tr v-if="!rows.length"><td colspan="10" class="muted">No nodes registered.</td></tr>
          </tbody>
        </table>
      </div>
      <node-form @added="reload" />
    </section>`,
};
