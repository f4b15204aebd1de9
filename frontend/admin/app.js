/** The dashboard shell: sign-in gate, hash routes, navigation, and the live-update pulse every view follows. */

import * as api from "./api.js";
import LoginView from "./components/LoginView.js";
import OverviewView from "./components/OverviewView.js";
import NodesView from "./components/NodesView.js";
import JobsView from "./components/JobsView.js";
import JobDetail from "./components/JobDetail.js";
import ClientsView from "./components/ClientsView.js";
import UsersView from "./components/UsersView.js";
import DatabaseView from "./components/DatabaseView.js";

const { createApp, ref, computed, provide, watch, onMounted, onBeforeUnmount } = window.Vue;

const PAGES = [
  { key: "overview", title: "Overview", view: OverviewView },
  { key: "nodes", title: "Nodes", view: NodesView },
  { key: "jobs", title: "Jobs", view: JobsView },
  { key: "clients", title: "Clients", view: ClientsView },
  { key: "users", title: "Admin users", view: UsersView },
  { key: "database", title: "Database", view: DatabaseView },
];
/** Even with the socket open, refresh now and then: charts move with time, not only with events. */
const SAFETY_REFRESH_MS = 15000;
/** Bursts of events (progress of many jobs) become one refresh. */
const COALESCE_MS = 300;

function parseHash() {
  const [path, search] = window.location.hash.replace(/^#\/?/, "").split("?");
  const [page, id] = path.split("/");
  return {
    page: PAGES.some((p) => p.key === page) ? page : "overview",
    id: id ? decodeURIComponent(id) : null,
    query: Object.fromEntries(new URLSearchParams(search || "")),
  };
}

/**
 * A counter that goes up whenever the API says (or a poll suggests) that something changed, and the latest
 * live message itself, for views that can apply an event at once (a node's health) before their reload.
 */
function usePulse(signedIn) {
  const pulse = ref(0);
  const lastEvent = ref(null);
  const mode = ref("connecting");
  let pending = null;
  let stop = null;
  let safety = null;
  const bump = () => {
    pending ??= setTimeout(() => {
      pending = null;
      pulse.value += 1;
    }, COALESCE_MS);
  };
  const onMessage = (message) => {
    if (message?.type !== "poll") lastEvent.value = message;
    bump();
  };
  const start = () => {
    stop = api.watchChanges(onMessage, (m) => (mode.value = m));
    safety = setInterval(() => mode.value === "live" && bump(), SAFETY_REFRESH_MS);
  };
  const end = () => {
    stop?.();
    clearInterval(safety);
    stop = null;
  };
  watch(signedIn, (now) => (now ? start() : end()), { immediate: true });
  onBeforeUnmount(end);
  return { pulse, lastEvent, mode };
}

const App = {
  name: "AdminApp",
  components: { LoginView, JobDetail },
  setup() {
    const signedIn = ref(Boolean(api.token()));
    const reason = ref("");
    const route = ref(parseHash());
    const menuOpen = ref(false);
    const { pulse, lastEvent, mode } = usePulse(signedIn);
    provide("pulse", pulse);
    provide("lastEvent", lastEvent);
    const user = computed(() => (signedIn.value ? api.currentUser() : null));
    const page = computed(() => PAGES.find((p) => p.key === route.value.page));
    const onHash = () => {
      route.value = parseHash();
      menuOpen.value = false;
    };
    onMounted(() => window.addEventListener("hashchange", onHash));
    onBeforeUnmount(() => window.removeEventListener("hashchange", onHash));
    api.onSignedOut((why) => {
      reason.value = why;
      signedIn.value = false;
    });
    const signOut = () => api.signOut("You signed out.");
    const entered = () => {
      reason.value = "";
      signedIn.value = true;
    };
    return { PAGES, signedIn, reason, route, page, user, mode, menuOpen, signOut, entered };
  },
  template: `
    <login-view v-if="!signedIn" :reason="reason" @signed-in="entered" />
    <div v-else class="shell">
      <header class="topbar">
        <a class="brand" href="#/overview">ComfyWS Admin</a>
        <button class="menu-toggle secondary" type="button" @click="menuOpen = !menuOpen" :aria-expanded="menuOpen">Menu</button>
        <nav :class="{ open: menuOpen }" aria-label="Sections">
          <a v-for="p in PAGES" :key="p.key" :href="'#/' + p.key" :class="{ active: p.key === route.page }"
             :aria-current="p.key === route.page ? 'page' : null">{{ p.title }}</a>
        </nav>
        <div class="session">
          <span class="live" :class="mode" :title="mode === 'live' ? 'live updates over WebSocket' : 'refreshing every 2.5 s'" data-testid="live-mode">{{ mode }}</span>
          <span v-if="user" class="muted">{{ user.username }} · {{ user.role }}</span>
          <button type="button" class="secondary" @click="signOut">Sign out</button>
        </div>
      </header>
      <main class="content">
        <job-detail v-if="route.page === 'jobs' && route.id" :task-id="route.id" :key="'job-' + route.id" />
        <component v-else :is="page.view" :key="page.key + JSON.stringify(route.query)"
                   v-bind="page.key === 'jobs' ? { query: route.query } : {}" />
      </main>
    </div>`,
};

createApp(App).mount("#app");
