/** Sign-in form for operators: POST /admin/auth/login, with a message that says what went wrong. */

import { signIn } from "../api.js";
import { messageOf } from "./common.js";

const { ref } = window.Vue;

export default {
  name: "LoginView",
  props: { reason: { type: String, default: "" } },
  emits: ["signed-in"],
  setup(props, { emit }) {
    const username = ref("");
    const password = ref("");
    const error = ref("");
    const busy = ref(false);
    const submit = async () => {
      error.value = "";
      busy.value = true;
      try {
        await signIn(username.value.trim(), password.value);
        password.value = "";
        emit("signed-in");
      } catch (failure) {
        error.value = failure.status === 401 ? "Wrong username or password." : messageOf(failure);
      } finally {
        busy.value = false;
      }
    };
    return { username, password, error, busy, submit };
  },
  template: `
    <main class="login">
      <form class="card" @submit.prevent="submit" aria-labelledby="login-title">
        <h1 id="login-title">ComfyUI Web Service · Admin</h1>
        <p v-if="reason && !error" class="message notice">{{ reason }}</p>
        <label>Username <input v-model="username" name="username" autocomplete="username" required autofocus></label>
        <label>Password <input v-model="password" name="password" type="password" autocomplete="current-password" required></label>
        <p v-if="error" class="message error" role="alert">{{ error }}</p>
        <button type="submit" :disabled="busy">{{ busy ? "Signing in…" : "Sign in" }}</button>
      </form>
    </main>`,
};
