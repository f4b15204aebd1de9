/** A client secret that is shown once, with a copy button and a way to dismiss it. */

const { ref } = window.Vue;

export default {
  name: "SecretBox",
  props: { secret: { type: Object, required: true } },
  emits: ["dismiss"],
  setup(props) {
    const copied = ref(false);
    const copy = async () => {
      await navigator.clipboard?.writeText(props.secret.client_secret);
      copied.value = true;
    };
    return { copied, copy };
  },
  template: `
    <div class="card secret" role="alert" data-testid="secret-box">
      <p><strong>Secret for {{ secret.client_name }}</strong> — shown once: store it now.</p>
      <p>Client id <code data-testid="secret-client-id">{{ secret.client_id }}</code></p>
      <p>Client secret <code data-testid="secret-value">{{ secret.client_secret }}</code></p>
      <button type="button" @click="copy">{{ copied ? "Copied" : "Copy secret" }}</button>
      <button type="button" class="secondary" @click="$emit('dismiss')">I stored it</button>
    </div>`,
};
