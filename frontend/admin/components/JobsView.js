/** Jobs of every client, newest first, filtered by status, task type, client and node; a row opens its detail. */

import { tasks, clients, nodes, taskTypes } from "../api.js";
import { useLiveLoad, StatusBadge } from "./common.js";
import { JOB_STATES, time, shortId, percent } from "./format.js";

const { ref, reactive, computed, watch, onMounted } = window.Vue;

const PAGE = 50;

export default {
  name: "JobsView",
  components: { StatusBadge },
  props: { query: { type: Object, default: () => ({}) } },
  setup(props) {
    const filters = reactive({
      status: props.query.status || "",
      task_type: props.query.task_type || "",
      client_id: props.query.client_id || "",
      node_id: props.query.node_id || "",
    });
    const offset = ref(0);
    const page = ref({ items: [], total: 0 });
    const choices = reactive({ types: [], clients: [], nodes: [] });
    const { loadError, reload } = useLiveLoad(async () => {
      page.value = await tasks.list({ ...filters, limit: PAGE, offset: offset.value });
    });
    onMounted(async () => {
      const [types, clientPage, nodeList] = await Promise.all([
        taskTypes().catch(() => []),
        clients.list().catch(() => ({ items: [] })),
        nodes.list().catch(() => []),
      ]);
      choices.types = types;
      choices.clients = clientPage.items || [];
      choices.nodes = nodeList.map((n) => n.node_id);
    });
    watch(filters, () => {
      offset.value = 0;
      const shown = Object.entries(filters).filter(([, v]) => v);
      history.replaceState(null, "", `#/jobs${shown.length ? `?${new URLSearchParams(shown)}` : ""}`);
      reload();
    });
    const names = computed(() => Object.fromEntries(choices.clients.map((c) => [c.client_id, c.client_name])));
    // Rows carry the client's id and name (null once the client is gone: its id stands in).
    const clientOf = (task) => task.client_name || names.value[task.client_id] || task.client_id || "—";
    const turn = (step) => {
      offset.value = Math.max(0, offset.value + step * PAGE);
      reload();
    };
    const open = (task) => (window.location.hash = `#/jobs/${encodeURIComponent(task.task_id)}`);
    const clear = () => Object.assign(filters, { status: "", task_type: "", client_id: "", node_id: "" });
    return { filters, page, choices, names, clientOf, offset, loadError, turn, open, clear, JOB_STATES, PAGE, time, shortId, percent };
  },
  template: `
    <section aria-labelledby="jobs-title">
      <h2 id="jobs-title">Jobs</h2>
      <form class="filters" @submit.prevent data-testid="job-filters">
        <label>Status <select v-model="filters.status" name="status">
          <option value="">any</option><option v-for="s in JOB_STATES" :key="s" :value="s">{{ s }}</option>
        </select></label>
        <label>Task type <select v-model="filters.task_type" name="task_type">
          <option value="">any</option><option v-for="t in choices.types" :key="t" :value="t">{{ t }}</option>
        </select></label>
        <label>Client <select v-model="filters.client_id" name="client_id">
          <option value="">any</option>
          <option v-for="c in choices.clients" :key="c.client_id" :value="c.client_id">{{ c.client_name }}</option>
        </select></label>
        <label>Node <select v-model="filters.node_id" name="node_id">
          <option value="">any</option><option v-for="n in choices.nodes" :key="n" :value="n">{{ n }}</option>
        </select></label>
        <button type="button" class="secondary" @click="clear">Clear</button>
      </form>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <div class="table-wrap">
        <table class="cards" data-testid="jobs-table">
          <thead><tr><th>Job</th><th>Status</th><th>Type</th><th>Client</th><th>Node</th><th>Progress</th><th>Created</th></tr></thead>
          <tbody>
            <tr v-for="t in page.items" :key="t.task_id" :data-task="t.task_id" class="clickable"
                @click="open(t)">
              <td data-label="Job"><a :href="'#/jobs/' + t.task_id" @click.stop>{{ shortId(t.task_id) }}</a></td>
              <td data-label="Status"><status-badge :state="t.status" /></td>
              <td data-label="Type">{{ t.task_type }}<small class="muted block">{{ t.workflow_name }}</small></td>
              <td data-label="Client">{{ clientOf(t) }}</td>
              <td data-label="Node">{{ t.node_id || "—" }}</td>
              <td data-label="Progress" class="num">{{ percent(t.progress) }}</td>
              <td data-label="Created">{{ time(t.created_at) }}</td>
            </tr>
            <tr v-if="!page.items.length"><td colspan="7" class="muted">No jobs match.</td></tr>
          </tbody>
        </table>
      </div>
      <nav class="pager" v-if="page.total > PAGE">
        <button class="secondary" :disabled="offset === 0" @click="turn(-1)">Newer</button>
        <span>{{ offset + 1 }}–{{ Math.min(offset + PAGE, page.total) }} of {{ page.total }}</span>
        <button class="secondary" :disabled="offset + PAGE >= page.total" @click="turn(1)">Older</button>
      </nav>
      <p v-else class="muted">{{ page.total }} job(s)</p>
    </section>`,
};
