/** Migration status of the client, admin and shared databases: current revision, head and what is pending. */

import { databaseStatus } from "../api.js";
import { useLiveLoad, StatusBadge } from "./common.js";

const { ref } = window.Vue;

export default {
  name: "DatabaseView",
  components: { StatusBadge },
  setup() {
    const rows = ref([]);
    const { loadError } = useLiveLoad(async () => {
      rows.value = await databaseStatus();
    });
    const state = (row) => (row.error ? "error" : row.ok ? "ok" : "pending");
    const label = (row) => (row.error ? "unreachable" : row.ok ? "up to date" : `${row.pending.length} pending`);
    return { rows, loadError, state, label };
  },
  template: `
    <section aria-labelledby="db-title">
      <h2 id="db-title">Databases</h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <div class="table-wrap">
        <table class="cards" data-testid="db-table">
          <thead><tr><th>Database</th><th>Migrations</th><th>Current</th><th>Head</th><th>Pending</th><th>URL</th></tr></thead>
          <tbody>
            <tr v-for="d in rows" :key="d.database" :data-database="d.database">
              <td data-label="Database"><strong>{{ d.database }}</strong></td>
              <td data-label="Migrations"><status-badge :state="state(d)" :label="label(d)" />
                <small v-if="d.error" class="block error-text">{{ d.error }}</small></td>
              <td data-label="Current"><code>{{ d.current || "none" }}</code></td>
              <td data-label="Head"><code>{{ d.head || "none" }}</code></td>
              <td data-label="Pending">{{ d.pending.length ? d.pending.join(", ") : "—" }}</td>
              <td data-label="URL"><small>{{ d.url }}</small></td>
            </tr>
          </tbody>
        </table>
      </div>
      <p class="muted">Apply pending migrations with <code>comfyws db migrate</code>.</p>
    </section>`,
};
