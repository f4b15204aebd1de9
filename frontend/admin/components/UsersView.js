/** Admin accounts: who may sign in to this dashboard, with which role; create, disable, enable, change role. */

import { users, currentUser } from "../api.js";
import { useLiveLoad, useFeedback, StatusBadge, Feedback } from "./common.js";
import { time } from "./format.js";

const { ref, reactive } = window.Vue;

const ROLES = ["admin", "operator", "viewer"];

export default {
  name: "UsersView",
  components: { StatusBadge, Feedback },
  setup() {
    const rows = ref([]);
    const form = reactive({ username: "", password: "", role: "operator" });
    const feedback = reactive(useFeedback());
    const me = currentUser()?.username;
    const { loadError, reload } = useLiveLoad(async () => {
      rows.value = await users.list();
    });
    const create = async () => {
      const created = await feedback.run(() => users.create({ ...form }), (u) => `Admin user ${u.username} created.`);
      if (created) {
        Object.assign(form, { username: "", password: "", role: "operator" });
        await reload();
      }
    };
    const setActive = async (user, active) => {
      const verb = active ? "enabled" : "disabled";
      await feedback.run(() => users.setActive(user.id, active), (u) => `${u.username} ${verb}.`);
      await reload();
    };
    const setRole = async (user, select) => {
      const changed = await feedback.run(() => users.setRole(user.id, select.value), (u) => `${u.username} is now ${u.role}.`);
      // Refused (the last admin, or no admin role): the stored role did not change, so neither does Vue's binding.
      if (!changed) select.value = user.role;
      await reload();
    };
    return { rows, form, feedback, loadError, me, create, setActive, setRole, time, ROLES };
  },
  template: `
    <section aria-labelledby="users-title">
      <h2 id="users-title">Admin users</h2>
      <p v-if="loadError" class="message error" role="alert">{{ loadError }}</p>
      <feedback :error="feedback.error" :notice="feedback.notice" />
      <div class="table-wrap">
        <table class="cards" data-testid="users-table">
          <thead><tr><th>Username</th><th>Role</th><th>State</th><th>Created</th><th>Last sign-in</th><th>Actions</th></tr></thead>
          <tbody>
            <tr v-for="u in rows" :key="u.id" :data-user="u.username">
              <td data-label="Username"><strong>{{ u.username }}</strong> <small v-if="u.username === me" class="muted">(you)</small></td>
              <td data-label="Role">
                <select :value="u.role" :aria-label="'Role of ' + u.username" :disabled="feedback.busy"
                        @change="setRole(u, $event.target)">
                  <option v-for="r in ROLES" :key="r" :value="r">{{ r }}</option>
                </select>
              </td>
              <td data-label="State"><status-badge :state="u.is_active ? 'active' : 'disabled'" /></td>
              <td data-label="Created">{{ time(u.created_at) }}</td>
              <td data-label="Last sign-in">{{ time(u.last_login_at) }}</td>
              <td data-label="Actions" class="actions">
                <button v-if="u.is_active" class="danger" :disabled="feedback.busy" @click="setActive(u, false)">Disable</button>
                <button v-else :disabled="feedback.busy" @click="setActive(u, true)">Enable</button>
              </td>
            </tr>
          </tbody>
        </table>
      </div>
      <form class="card form-grid" @submit.prevent="create" data-testid="create-user">
        <h3>Create an admin user</h3>
        <label>Username <input v-model="form.username" name="username" required maxlength="64" autocomplete="off"></label>
        <label>Password <input v-model="form.password" name="password" type="password" required minlength="8" autocomplete="new-password"></label>
        <label>Role <select v-model="form.role" name="role"><option v-for="r in ROLES" :key="r" :value="r">{{ r }}</option></select></label>
        <div class="form-end"><button type="submit" :disabled="feedback.busy">Create user</button></div>
      </form>
    </section>`,
};
