/** The load-balancing strategy of each node group, read and switched through /api/v2/admin/strategy/{group}. */

import { strategies } from "../api.js";
import { useFeedback, Feedback } from "./common.js";
import { STRATEGIES } from "./format.js";

const { ref, reactive, watch } = window.Vue;

export default {
  name: "StrategyPicker",
  components: { Feedback },
  props: { groups: { type: Array, required: true } },
  setup(props) {
    const current = ref({});
    const feedback = reactive(useFeedback());
    const load = async () => {
      const entries = await Promise.all(props.groups.map(async (g) => [g, await strategies.get(g).catch(() => null)]));
      current.value = Object.fromEntries(entries.filter(([, s]) => s));
    };
    watch(() => props.groups.join(","), load, { immediate: true });
    const change = async (group, strategy) => {
      const saved = await feedback.run(() => strategies.put(group, strategy), `Group ${group} now uses ${strategy}.`);
      if (saved) current.value = { ...current.value, [group]: saved };
      else await load();
    };
    return { current, feedback, change, STRATEGIES };
  },
  template: `
    <div class="card strategies" data-testid="strategies">
      <h3>Load balancing</h3>
      <div class="strategy-row" v-for="(s, group) in current" :key="group" :data-group="group">
        <label>Group <strong>{{ group }}</strong>
          <select :value="s.strategy" @change="change(group, $event.target.value)" :name="'strategy-' + group">
            <option v-for="name in STRATEGIES" :key="name" :value="name">{{ name }}</option>
          </select>
        </label>
        <small class="muted">{{ s.source === "admin" ? "set by an operator" : "from config.yaml" }}</small>
      </div>
      <feedback :error="feedback.error" :notice="feedback.notice" />
    </div>`,
};
