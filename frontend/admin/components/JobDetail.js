/** One job: its parameters, every attempt and its node, results, the Prefect flow run; cancel and retry. */

import { tasks, prefectRunUrl } from "../api.js";
import { useLiveLoad, useFeedback, StatusBadge, Feedback } from "./common.js";
import { FINAL_STATES, time, seconds, percent } from "./format.js";

const { ref, reactive, computed, watch } = window.Vue;

export default {
  name: "JobDetail",
  components: { StatusBadge, Feedback },
  props: { taskId: { type: String, required: true } },
  setup(props) {
    const task = ref(null);
    const { loadError, reload } = useLiveLoad(async () => {
      task.value = await tasks.get(props.taskId);
    });
    watch(() => props.taskId, reload);
    const feedback = reactive(useFeedback());
    const attempts = computed(() => task.value?.attempt_list || task.value?.attempts_detail || []);
    const flowRun = computed(() => prefectRunUrl(task.value?.flow_run_id));
    const final = computed(() => FINAL_STATES.includes(task.value?.status));
    const params = computed(() => Object.entries(task.value?.params || {}));
    const cancel = async () => {
      await feedback.run(() => tasks.cancel(props.taskId), "Cancellation requested.");
      await reload();
    };
    const retry = async () => {
      const created = await feedback.run(() => tasks.retry(props.taskId), (t) => `Retried as job ${t.task_id}.`);
      if (created) window.location.hash = `#/jobs/${encodeURIComponent(created.task_id)}`;
    };
    return { task, loadError, feedback, attempts, flowRun, final, params, cancel, retry, time, seconds, percent };
  },
  template: `
    <section aria-labelledby="job-title" data-testid="job-detail">
      <p><a href="#/jobs">← All jobs</a></p>
      <h2 id="job-title">Job <code>{{ taskId }}</code></h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <feedback :error="feedback.error" :notice="feedback.notice" />
      <template v-if="task">
        <div class="toolbar">
          <status-badge :state="task.status" data-testid="job-status" />
          <span v-if="task.cancel_requested && !final" class="muted">cancelling…</span>
          <button v-if="!final" class="danger" :disabled="feedback.busy" @click="cancel">Cancel job</button>
          <button v-if="final && task.status !== 'completed'" :disabled="feedback.busy" @click="retry">Retry</button>
          <a v-if="flowRun" class="button secondary" :href="flowRun" target="_blank" rel="noopener" data-testid="flow-run-link">Flow run in Prefect</a>
          <span v-else-if="task.flow_run_id" class="muted">flow run {{ task.flow_run_id }}</span>
        </div>
        <dl class="facts">
          <dt>Type</dt><dd>{{ task.task_type }} · {{ task.workflow_name }}</dd>
          <dt>Client</dt><dd>{{ task.client_name || task.client_id }} <small v-if="task.client_name" class="muted">{{ task.client_id }}</small></dd>
          <dt>Node</dt><dd>{{ task.node_id || "—" }} <small class="muted">(group {{ task.node_group || "default" }})</small></dd>
          <dt>Priority</dt><dd>{{ task.priority }}</dd>
          <dt>Progress</dt><dd>{{ percent(task.progress) }}<span v-if="task.total_steps"> · step {{ task.current_step }} / {{ task.total_steps }}</span></dd>
          <dt v-if="task.queue_position != null">Queue position</dt><dd v-if="task.queue_position != null">{{ task.queue_position }}</dd>
          <dt>Seed</dt><dd data-testid="job-seed">{{ task.seed ?? "—" }}</dd>
          <dt>Created</dt><dd>{{ time(task.created_at) }}</dd>
          <dt>Started</dt><dd>{{ time(task.started_at) }}</dd>
          <dt>Finished</dt><dd>{{ time(task.finished_at) }}</dd>
          <dt v-if="task.error">Error</dt><dd v-if="task.error" class="error-text">{{ task.error }}</dd>
        </dl>
        <h3>Parameters</h3>
        <dl class="facts params" data-testid="job-params">
          <template v-for="[name, value] in params" :key="name">
            <dt>{{ name }}</dt><dd><pre>{{ typeof value === "string" ? value : JSON.stringify(value) }}</pre></dd>
          </template>
        </dl>
        <h3>Attempts ({{ attempts.length }})</h3>
        <div class="table-wrap">
          <table class="cards" data-testid="attempts-table">
            <thead><tr><th>#</th><th>Node</th><th>Status</th><th>Started</th><th>Finished</th><th>Ran</th><th>Error</th></tr></thead>
            <tbody>
              <tr v-for="a in attempts" :key="a.number" :data-attempt="a.number">
                <td data-label="#">{{ a.number }}</td>
                <td data-label="Node">{{ a.node_id }}</td>
                <td data-label="Status"><status-badge :state="a.status" /></td>
                <td data-label="Started">{{ time(a.started_at) }}</td>
                <td data-label="Finished">{{ time(a.finished_at) }}</td>
                <td data-label="Ran" class="num">{{ seconds(a.execution_seconds) }}</td>
                <td data-label="Error">{{ a.error || "" }}</td>
              </tr>
              <tr v-if="!attempts.length"><td colspan="7" class="muted">No attempt on a node yet.</td></tr>
            </tbody>
          </table>
        </div>
        <h3 v-if="task.results && task.results.length">Results</h3>
        <ul v-if="task.results && task.results.length" class="plain">
          <li v-for="r in task.results" :key="r.index">{{ r.filename }} <small class="muted">{{ r.kind }}, {{ r.content_type }}, {{ r.size }} bytes</small></li>
        </ul>
      </template>
    </section>`,
};
