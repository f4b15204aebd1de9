/** Result files fetched with the bearer token into blob URLs (cached), shown inline as image or video. */

import * as api from "./api.js";
import { el } from "./ui.js";

const cache = new Map(); // result url -> Promise<{blob, url}>

export function resultBlob(result) {
  if (!cache.has(result.url)) {
    const pending = api.fetchResult(result.url).then((blob) => ({ blob, url: URL.createObjectURL(blob) }));
    pending.catch(() => cache.delete(result.url)); // a failed fetch may be tried again later
    cache.set(result.url, pending);
  }
  return cache.get(result.url);
}

export function forgetResults() {
  for (const pending of cache.values()) pending.then(({ url }) => URL.revokeObjectURL(url)).catch(() => {});
  cache.clear();
}

function isVideo(result) {
  return String(result.content_type || "").startsWith("video/");
}

/** A figure for one result: the media (animated WEBP and GIF play as images), a download link, extra actions. */
export function resultFigure(result, { actions = [] } = {}) {
  const media = isVideo(result)
    ? el("video", { attrs: { controls: true, loop: true, muted: true, autoplay: true, playsinline: true } })
    : el("img", { attrs: { alt: result.filename } });
  media.classList.add("result-media");
  const download = el("a", { text: "Download", cls: "button", attrs: { download: result.filename } });
  const figure = el("figure", { cls: "result", attrs: { "data-result": result.url } }, [
    media,
    el("figcaption", {}, [el("span", { text: result.filename }), download, ...actions]),
  ]);
  resultBlob(result)
    .then(({ url }) => {
      media.src = url;
      download.href = url;
      figure.classList.add("loaded");
    })
    .catch((error) => {
      figure.append(el("p", { cls: "error", text: `Could not load the result: ${error.message}` }));
    });
  return figure;
}
