/** The form that adds a node to the registry (POST /api/v2/admin/nodes). */

import { nodes } from "../api.js";
import { useFeedback, Feedback } from "./common.js";

const { reactive } = window.Vue;

const blank = () => ({ node_id: "", base_url: "http://", group: "default", max_concurrent: 1, capabilities: "", weight: 1 });

export default {
  name: "NodeForm",
  components: { Feedback },
  emits: ["added"],
  setup(props, { emit }) {
    const form = reactive(blank());
    const feedback = reactive(useFeedback());
    const submit = async () => {
      const body = {
        ...form,
        max_concurrent: Number(form.max_concurrent),
        weight: Number(form.weight),
        capabilities: form.capabilities.split(",").map((c) => c.trim()).filter(Boolean),
      };
      const added = await feedback.run(() => nodes.add(body), (node) => `Node ${node.node_id} added.`);
      if (added) {
        Object.assign(form, blank());
        emit("added", added);
      }
    };
    return { form, feedback, submit };
  },
  template: `
    <form class="card form-grid" @submit.prevent="submit" aria-labelledby="add-node-title" data-testid="add-node">
      <h3 id="add-node-title">Add a node</h3>
      <label>Node id <input v-model="form.node_id" name="node_id" required pattern="[A-Za-z0-9_.:\\-]+"></label>
      <label>Base URL <input v-model="form.base_url" name="base_url" type="url" required placeholder="http://192.168.1.101:8188"></label>
      <label>Group <input v-model="form.group" name="group" required></label>
      <label>Max concurrent <input v-model="form.max_concurrent" name="max_concurrent" type="number" min="1" required></label>
      <label>Weight <input v-model="form.weight" name="weight" type="number" min="0.1" step="0.1" required></label>
      <label>Task types <input v-model="form.capabilities" name="capabilities" placeholder="empty = all, or text_to_image, image_to_video"></label>
      <div class="form-end"><button type="submit" :disabled="feedback.busy">Add node</button></div>
      <feedback :error="feedback.error" :notice="feedback.notice" />
    </form>`,
};
