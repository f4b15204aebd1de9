/** Clients: create, disable or enable, rotate the secret (shown once) and set the quota (jobs per day, submits per
 * minute, unfinished jobs at once). */

import { clients } from "../api.js";
import { useLiveLoad, useFeedback, StatusBadge, Feedback } from "./common.js";
import { time } from "./format.js";
import SecretBox from "./SecretBox.js";

const { ref, reactive } = window.Vue;
const LIMITS = ["daily_quota", "jobs_per_minute", "max_concurrent_jobs"];

export default {
  name: "ClientsView",
  components: { StatusBadge, Feedback, SecretBox },
  setup() {
    const rows = ref([]);
    const quotas = reactive({});
    const secret = ref(null);
    const form = reactive({ client_name: "", description: "", daily_quota: "" });
    const feedback = reactive(useFeedback());
    const { loadError, reload } = useLiveLoad(async () => {
      rows.value = (await clients.list()).items || [];
      // An edit in progress is kept; other quota fields follow the server.
      for (const c of rows.value) {
        if (!(c.client_id in quotas)) quotas[c.client_id] = Object.fromEntries(LIMITS.map((k) => [k, c[k] ?? ""]));
      }
    });
    const quotaOf = (value) => (value === "" || value === null ? null : Number(value));
    const create = async () => {
      const body = { ...form, daily_quota: quotaOf(form.daily_quota) };
      const created = await feedback.run(() => clients.create(body), (c) => `Client ${c.client_name} created.`);
      if (created) {
        secret.value = created;
        Object.assign(form, { client_name: "", description: "", daily_quota: "" });
        await reload();
      }
    };
    const setActive = async (client, active) => {
      await feedback.run(() => clients.setActive(client.client_id, active), `${client.client_name} ${active ? "enabled" : "disabled"}.`);
      await reload();
    };
    const rotate = async (client) => {
      const rotated = await feedback.run(() => clients.rotate(client.client_id), "New secret issued; old tokens no longer work.");
      if (rotated) secret.value = rotated;
    };
    const saveQuota = async (client) => {
      const edited = quotas[client.client_id];
      const changes = Object.fromEntries(LIMITS.map((k) => [k, quotaOf(edited[k])]));
      await feedback.run(() => clients.update(client.client_id, changes), `Quota of ${client.client_name} saved.`);
      delete quotas[client.client_id];
      await reload();
    };
    return { rows, quotas, secret, form, feedback, loadError, create, setActive, rotate, saveQuota, time };
  },
  template: `
    <section aria-labelledby="clients-title">
      <h2 id="clients-title">Clients</h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <feedback :error="feedback.error" :notice="feedback.notice" />
      <secret-box v-if="secret" :secret="secret" @dismiss="secret = null" />
      <div class="table-wrap">
        <table class="cards" data-testid="clients-table">
          <thead><tr><th>Name</th><th>State</th><th>Quota</th><th>Created</th><th>Actions</th></tr></thead>
          <tbody>
            <tr v-for="c in rows" :key="c.client_id" :data-client="c.client_id">
              <td data-label="Name"><strong class="client-name">{{ c.client_name }}</strong>
                <small class="muted block">{{ c.client_id }}</small>
                <small v-if="c.description" class="block">{{ c.description }}</small></td>
              <td data-label="State"><status-badge :state="c.is_active ? 'active' : 'disabled'" /></td>
              <td data-label="Quota">
                <form class="inline quota" @submit.prevent="saveQuota(c)">
                  <input v-model="quotas[c.client_id].daily_quota" type="number" min="0" placeholder="unlimited" title="jobs per day" :aria-label="'daily quota of ' + c.client_name">
                  <input v-model="quotas[c.client_id].jobs_per_minute" type="number" min="0" placeholder="no rate limit" title="submits per minute" :aria-label="'jobs per minute of ' + c.client_name">
                  <input v-model="quotas[c.client_id].max_concurrent_jobs" type="number" min="0" placeholder="no cap" title="unfinished jobs at once" :aria-label="'concurrent jobs of ' + c.client_name">
                  <button type="submit" class="secondary">Save</button>
                </form>
              </td>
              <td data-label="Created">{{ time(c.created_at) }}</td>
              <td data-label="Actions" class="actions">
                <button v-if="c.is_active" @click="setActive(c, false)">Disable</button>
                <button v-else @click="setActive(c, true)">Enable</button>
                <button class="secondary" @click="rotate(c)">Rotate secret</button>
                <a class="button secondary" :href="'#/jobs?client_id=' + encodeURIComponent(c.client_id)">Jobs</a>
              </td>
            </tr>
            <tr v-if="!rows.length"><td colspan="5" class="muted">No clients yet.</td></tr>
          </tbody>
        </table>
      </div>
      <form class="card form-grid" @submit.prevent="create" data-testid="create-client">
        <h3>Create a client</h3>
        <label>Name <input v-model="form.client_name" name="client_name" required maxlength="128"></label>
        <label>Description <input v-model="form.description" name="description"></label>
        <label>Daily quota <input v-model="form.daily_quota" name="daily_quota" type="number" min="0" placeholder="unlimited"></label>
        <div class="form-end"><button type="submit" :disabled="feedback.busy">Create client</button></div>
      </form>
    </section>`,
};
